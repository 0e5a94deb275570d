"""Composition: build the embedded (or real) adapters from the settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ingest.bus import EmbeddedBus
from ingest.deadletter import DeadLetterStore
from ingest.dedup import SeenIds
from ingest.pipeline import EVENTS_TOPIC
from ingest.validate import Limits, Validator
from serve.settings import Settings


@dataclass(slots=True)
class IngestRuntime:
    """What an ingest run needs, opened on one data directory."""

    bus: EmbeddedBus
    seen: SeenIds
    dead_letters: DeadLetterStore
    validator: Validator


def make_validator(settings: Settings) -> Validator:
    """The record validator with the configured plausibility limits."""
    limits = Limits(
        max_amount=settings.max_amount,
        max_future=timedelta(hours=settings.max_future_hours),
    )
    return Validator(limits=limits)


@contextmanager
def ingest_runtime(settings: Settings) -> Iterator[IngestRuntime]:
    """Open the bus, the seen-id index and the dead-letter store; close them after."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    bus = EmbeddedBus(settings.path("bus"))
    try:
        seen = SeenIds(settings.path("ingest"), bus, EVENTS_TOPIC)
        dead_letters = DeadLetterStore(settings.path("deadletter"))
        try:
            yield IngestRuntime(bus, seen, dead_letters, make_validator(settings))
        finally:
            dead_letters.close()
            seen.close()
    finally:
        bus.close()


def graph_follower(settings: Settings) -> Any:
    """The graph store and ring detector on the data directory, following the bus.

    The caller owns the returned follower; the bus it reads is closed when the process exits.
    """
    from graph.follower import GraphFollower

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    mirror = None
    if settings.neo4j_uri:
        from graph.neo4j_store import Neo4jGraphStore

        auth = None
        if settings.neo4j_user:
            secret = settings.neo4j_password
            auth = (settings.neo4j_user, secret.get_secret_value() if secret else "")
        mirror = Neo4jGraphStore(settings.neo4j_uri, database=settings.neo4j_database, auth=auth)
    bus = EmbeddedBus(settings.path("bus"))
    return GraphFollower(settings.path("graph"), bus, mirror=mirror)


@contextmanager
def scoring_pipeline(
    settings: Settings, model_path: Any = None, *, keep_history: bool = True
) -> Iterator[Any]:
    """The scoring pipeline on the data directory, closed (blocks, alerts) after the block.

    The model (default: the data directory's latest), the block list, step-up challenges, the
    rule store it follows, and alerts (the outbox and whatever channels the settings configure).
    """
    from gnn import registry
    from rules.store import RuleStore, StoreFollower
    from serve.alerts.config import build_dispatcher
    from serve.enforcement import BlockList, Challenges
    from serve.pipeline import ScoringPipeline

    model, manifest = registry.load(model_path or settings.path("models"))
    config = settings.alerts_config()
    alerts = build_dispatcher(config) if config.channels() else None
    blocks = BlockList(settings.path("blocks"))
    try:
        yield ScoringPipeline(
            model,
            manifest,
            blocks=blocks,
            challenges=Challenges(),
            alerts=alerts,
            rules_from=StoreFollower(RuleStore(settings.path("rules"))),
            keep_history=keep_history,
        )
    finally:
        blocks.close()
        if alerts is not None:
            alerts.close(10.0)
