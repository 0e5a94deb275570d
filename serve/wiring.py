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
    With ``model_backend=torchserve`` the scores come from TorchServe
    (:class:`serve.model_backend.TorchServeBackend`, checked to serve the same model version
    before the pipeline is handed out).

    Raises:
        ModelBackendError: the TorchServe backend without ``keep_history``, TorchServe
            unreachable, or serving another model version.
    """
    from gnn import registry
    from rules.store import RuleStore, StoreFollower
    from serve.alerts.config import build_dispatcher
    from serve.enforcement import BlockList, Challenges
    from serve.model_backend import ModelBackendError, TorchServeBackend
    from serve.pipeline import ScoringPipeline

    model, manifest = registry.load(model_path or settings.path("models"))
    remote = settings.model_backend == "torchserve"
    if remote and not keep_history:
        raise ModelBackendError(
            f"model_backend=torchserve ({settings.torchserve_url}) builds each transaction's "
            "subgraph from the pipeline's history: it needs keep_history=True"
        )
    config = settings.alerts_config()
    alerts = build_dispatcher(config) if config.channels() else None
    blocks = BlockList(settings.path("blocks"))
    backend: TorchServeBackend | None = None
    worker = None
    try:
        if settings.feature_worker:
            from serve.feature_worker import FeatureWorker

            worker = FeatureWorker()
        pipeline = ScoringPipeline(
            model,
            manifest,
            blocks=blocks,
            challenges=Challenges(),
            alerts=alerts,
            rules_from=StoreFollower(RuleStore(settings.path("rules"))),
            keep_history=keep_history,
            feature_worker=worker,
        )
        if remote:
            # the backend reads the history the pipeline owns, so it is attached once the
            # pipeline exists (the same as passing it as ``backend=``: nothing has been scored)
            backend = TorchServeBackend.for_pipeline(
                pipeline,
                settings.torchserve_url,
                settings.torchserve_model,
                timeout_s=settings.torchserve_timeout_s,
                max_request_bytes=settings.torchserve_max_request_bytes,
            )
            pipeline.backend = backend
        yield pipeline
    finally:
        if backend is not None:
            backend.close()
        if worker is not None:
            worker.close()
        blocks.close()
        if alerts is not None:
            alerts.close(10.0)


@contextmanager
def decision_journal(settings: Settings) -> Iterator[Any]:
    """The API's decision journal in ``<data-dir>/journal``, synced and closed after the block."""
    from serve.journal import DecisionJournal, MiB

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    journal = DecisionJournal(
        settings.path("journal"),
        sync_ms=settings.journal_sync_ms,
        segment_bytes=settings.journal_segment_mb * MiB,
    )
    try:
        yield journal
    finally:
        journal.close()


def warm_from_data_dir(
    settings: Settings,
    pipeline: Any,
    *,
    history: bool = True,
    journal: bool = True,
    progress: Any = None,
) -> Any:
    """Rebuild ``pipeline``'s state from the data directory's bus and decision journal.

    Returns the :class:`serve.warm.WarmSummary`. The bus is opened only to read, and only when
    its ``events`` topic exists.
    """
    from serve.warm import warm_start

    bus = None
    if history and settings.path("bus", EVENTS_TOPIC).is_dir():
        bus = EmbeddedBus(settings.path("bus"))
    try:
        return warm_start(
            pipeline,
            bus=bus,
            journal=settings.path("journal") if journal else None,
            progress=progress,
        )
    finally:
        if bus is not None:
            bus.close()
