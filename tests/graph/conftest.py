"""Fixtures of the graph tests: ``store`` (an empty store of each backend) and a generated data
set's events, built once per session.

A backend joins the contract suite with one entry in ``BACKENDS``: a function that receives the
test's ``request`` (so it can ask for session fixtures, ``request.getfixturevalue("neo4j_uri")``)
and returns an empty store. The ``store`` fixture closes it after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graph.embedded import EmbeddedGraphStore
from graph.store import GraphStore

StoreFactory = Callable[[pytest.FixtureRequest], GraphStore]


def _embedded(request: pytest.FixtureRequest) -> GraphStore:
    return EmbeddedGraphStore()


def _neo4j(request: pytest.FixtureRequest) -> GraphStore:
    from graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(request.getfixturevalue("neo4j_uri"))
    store.clear()
    return store


BACKENDS: dict[str, StoreFactory] = {
    "embedded": _embedded,
    "neo4j": _neo4j,
}
"""Every backend the contract suite runs against: name -> a function returning an empty store."""


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    s = BACKENDS[request.param](request)
    try:
        yield s
    finally:
        s.close()


GENERATED_SEED = 5


@pytest.fixture(scope="session")
def generated_events(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The canonical events of the ``small`` generated data set, ingested and read off the bus.

    About 6,000 events of every type (transactions, logins, device and account events), with
    the planted fraud rings, in bus order: what the graph follower would see.
    """
    from ingest.bus.embedded import EmbeddedBus
    from ingest.events import decode_event
    from ingest.generator import PROFILES, generate
    from ingest.pipeline import EVENTS_TOPIC
    from serve.cli import run_ingest
    from serve.settings import Settings

    root: Path = tmp_path_factory.mktemp("generated")
    generate(root / "sources", seed=GENERATED_SEED, **PROFILES["small"])
    settings = Settings(data_dir=root / "state")
    summary = run_ingest(settings, root / "sources", expectations=False, quiet=True)
    events: list[Any] = []
    with EmbeddedBus(settings.path("bus")) as bus:
        consumer = bus.consumer(EVENTS_TOPIC, "graph-tests")
        while records := consumer.poll(5_000):
            events.extend(decode_event(r.payload) for r in records)
    assert len(events) == summary["totals"]["accepted"] == summary["bus_end_offset"]
    return events
