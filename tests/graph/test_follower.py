"""The graph follows the bus: incremental catch-up equals a rebuild, and nothing applies twice."""

from __future__ import annotations

import orjson
import pytest

from graph.follower import GraphFollower
from graph.model import EdgeUpdate
from ingest.bus import EmbeddedBus
from ingest.pipeline import EVENTS_TOPIC
from serve.cli import run_ingest
from serve.settings import Settings


def txn(i: int, account: str, device: str, counterparty: str | None = None) -> bytes:
    record = {
        "event_type": "transaction",
        "txn_id": f"t{i}",
        "timestamp": f"2026-10-01T10:{i:02d}:00Z",
        "source": "bank",
        "account_id": account,
        "amount": "25.00",
        "currency": "EUR",
        "channel": "transfer" if counterparty else "card_present",
        "device_id": device,
    }
    if counterparty:
        record["counterparty_account_id"] = counterparty
    return orjson.dumps(record)


def ingest_lines(settings: Settings, tmp_path, name: str, lines: list[bytes]) -> None:
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    run_ingest(settings, path, expectations=False, quiet=True)


def snapshot_of(follower: GraphFollower) -> tuple:
    rings = [(r.id, tuple(r.accounts)) for r in follower.detector.rings()]
    return follower.store.counts(), follower.events, rings


def test_incremental_catch_up_equals_a_rebuild_and_never_applies_twice(tmp_path):
    settings = Settings(data_dir=tmp_path / "state")
    first = [
        txn(i, f"a{i % 6}", f"d{i % 4}", f"a{(i + 1) % 6}" if i % 3 else None) for i in range(30)
    ]
    second = [txn(i, f"a{i % 9}", f"d{i % 5}") for i in range(30, 60)]
    ingest_lines(settings, tmp_path, "one", first)
    with EmbeddedBus(settings.path("bus")) as bus:
        follower = GraphFollower(settings.path("graph"), bus)
        assert follower.catch_up() == 30
        assert follower.catch_up() == 0
    ingest_lines(settings, tmp_path, "two", second)
    with EmbeddedBus(settings.path("bus")) as bus:
        resumed = GraphFollower(settings.path("graph"), bus)  # restored from its saved state
        assert resumed.offset == 30
        assert resumed.catch_up() == 30
        incremental = snapshot_of(resumed)
        rebuilt = GraphFollower(tmp_path / "rebuild", bus)
        assert rebuilt.catch_up() == 60
        assert snapshot_of(rebuilt) == incremental
        assert incremental[0]["edges"] > 0
        assert bus.end_offset(EVENTS_TOPIC) == 60


def test_a_crash_after_saving_does_not_reapply(tmp_path):
    """The offset is saved with the state, so a lost consumer commit changes nothing."""
    settings = Settings(data_dir=tmp_path / "state")
    ingest_lines(settings, tmp_path, "one", [txn(i, "a1", "d1") for i in range(10)])
    with EmbeddedBus(settings.path("bus")) as bus:
        follower = GraphFollower(settings.path("graph"), bus)
        follower.catch_up()
        edges = follower.store.edges(("account", "a1"))
        consumer = bus.consumer(EVENTS_TOPIC, GraphFollower.GROUP)
        consumer.seek(0)
        consumer.commit(0)  # as if the commit after the save had been lost
        consumer.close()
        again = GraphFollower(settings.path("graph"), bus)
        assert again.catch_up() == 0
        assert again.store.edges(("account", "a1")) == edges
        assert edges[0].times == 10
    snaps = sorted(p.name for p in settings.path("graph").iterdir())
    assert snaps == ["rings-10.snap", "state.json", "store-10.snap"]


def test_neo4j_mirror_is_written_behind_exactly_once(tmp_path, neo4j_uri):
    """The graph of record in a real Neo4j matches the embedded graph, batch for batch."""
    from graph.neo4j_store import CheckpointConflict, Neo4jGraphStore
    from serve.wiring import graph_follower

    settings = Settings(data_dir=tmp_path / "state", neo4j_uri=neo4j_uri)
    with Neo4jGraphStore(neo4j_uri) as neo:
        neo.clear()
    first = [
        txn(i, f"a{i % 6}", f"d{i % 4}", f"a{(i + 1) % 6}" if i % 3 else None) for i in range(30)
    ]
    ingest_lines(settings, tmp_path, "one", first)
    follower = graph_follower(settings)
    assert follower.catch_up(batch_size=7) == 30  # several batches, several transactions
    mirror = follower.mirror
    assert mirror.checkpoint(GraphFollower.GROUP) == 30
    assert mirror.counts() == follower.store.counts()
    for account in ("a0", "a1", "a5"):
        node = ("account", account)
        assert mirror.edges(node) == follower.store.edges(node)
    # a replayed batch is refused whole: the checkpoint is past it, and nothing is applied
    replay = [EdgeUpdate("USES_DEVICE", "a0", "device", "d_new", 1.79e9)]
    with pytest.raises(CheckpointConflict, match="not at 0"):
        mirror.upsert_through(replay, stream="graph", expected=0, offset=7)
    assert not mirror.has_node(("device", "d_new"))
    assert mirror.checkpoint(GraphFollower.GROUP) == 30
    # the graph of record is wiped (a restore from an old backup, say): it catches up alone
    mirror.clear()
    ingest_lines(settings, tmp_path, "two", [txn(i, "a9", "d9") for i in range(30, 35)])
    follower = graph_follower(settings)
    assert follower.catch_up() == 5  # the embedded state applies only the new events
    assert follower.mirror.checkpoint(GraphFollower.GROUP) == 35
    assert follower.mirror.counts() == follower.store.counts()
    follower.mirror.close()
