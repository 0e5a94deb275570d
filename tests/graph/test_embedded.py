"""What only the embedded store has: lazy recency order, snapshots, thread safety.

The contract it shares with every backend is in ``test_store_contract.py``.
"""

from __future__ import annotations

import os
import random
import threading
from array import array
from pathlib import Path
from typing import Any

import pytest

import graph.embedded as embedded
from graph.embedded import FORMAT_VERSION, EmbeddedGraphStore
from graph.model import REL_TARGET, EdgeUpdate, Node
from graph.store import GraphStore

RELS = list(REL_TARGET)


def random_updates(rng: random.Random, n: int, *, span: int = 60) -> list[EdgeUpdate]:
    """Skewed: a few hub identifiers and accounts, whole-second times (many ties), out of order."""
    out = []
    for _ in range(n):
        rel = rng.choice(RELS)
        kind = REL_TARGET[rel]
        src = f"a{int(rng.paretovariate(1.2)) % 40}"
        if kind == "account":
            dst = f"a{rng.randrange(40)}"
        else:
            dst = f"{kind[0]}{int(rng.paretovariate(0.9)) % 30}"
        amount = rng.choice([0.0, 1.5, 2.25, 10.0]) if rel in ("PAYS", "TRANSFERS_TO") else 0.0
        out.append(
            EdgeUpdate(rel, src, kind, dst, float(rng.randrange(span)), amount, rng.random() < 0.2)
        )
    return out


def random_node(rng: random.Random) -> Node:
    kind = rng.choice(["account", "account", *REL_TARGET.values()])
    return Node(
        kind, f"a{rng.randrange(40)}" if kind == "account" else f"{kind[0]}{rng.randrange(30)}"
    )


def same_walk(store: EmbeddedGraphStore, rng: random.Random) -> None:
    """The store's walk agrees with the interface's default walk over ``_adjacent``."""
    seeds = [random_node(rng) for _ in range(rng.randrange(1, 3))]
    hops = rng.randrange(0, 4)
    fanout = rng.choice([1, 2, 3, 5, 50])
    since = rng.choice([None, float(rng.randrange(60))])
    until = rng.choice([None, float(rng.randrange(60))])
    if since is not None and until is not None and since > until:
        since, until = until, since
    got = store.subgraph(seeds, hops=hops, fanout=fanout, since=since, until=until)
    expected = GraphStore._subgraph(store, seeds, hops, fanout, since, until)
    assert got == expected, (seeds, hops, fanout, since, until)


@pytest.mark.parametrize(
    ("small", "fold_min", "numpy_min"), [(16, 64, 64), (2, 3, 0), (0, 0, 10**9)]
)
def test_lazy_recency_order_matches_the_plain_walk(
    monkeypatch: pytest.MonkeyPatch, small: int, fold_min: int, numpy_min: int
) -> None:
    # small thresholds send every side through the pending lists, merges and folds
    monkeypatch.setattr(embedded, "_SMALL", small)
    monkeypatch.setattr(embedded, "_FOLD_MIN", fold_min)
    monkeypatch.setattr(embedded, "_NUMPY_MIN", numpy_min)
    rng = random.Random(small * 100 + fold_min)
    store = EmbeddedGraphStore()
    for step in range(300):
        store.upsert(random_updates(rng, rng.randrange(1, 40)))
        for _ in range(2):
            same_walk(store, rng)
        if step % 60 == 59:
            store.delete_personal_data(f"a{rng.randrange(40)}")
        if step % 100 == 99:
            store.compact()
    assert store.counts()["edges"] > 500


def test_a_hub_walk_reads_only_the_top_of_its_side() -> None:
    store = EmbeddedGraphStore()
    store.upsert(
        EdgeUpdate("FROM_IP", f"a{i:05d}", "ip", "wifi", float(i % 5_000)) for i in range(20_000)
    )
    store.compact()

    class Counting(array):  # type: ignore[type-arg]
        reads = 0

        def __getitem__(self, i: Any) -> Any:
            Counting.reads += 1
            return super().__getitem__(i)

    store._nl = Counting("d", store._nl)
    sg = store.subgraph([Node("ip", "wifi")], hops=1, fanout=10)
    # four accounts last seen at 4999, four at 4998, then the first two by id of those at 4997
    assert [n.id for n in sg.nodes] == [
        "a04997", "a04998", "a04999", "a09997", "a09998", "a09999", "a14998", "a14999",
        "a19998", "a19999", "wifi",
    ]  # fmt: skip
    assert len(sg.edges) == 10
    assert Counting.reads < 100  # the top of a sorted side, never a scan of its 20,000 edges


def test_an_account_whose_only_edge_is_a_self_loop() -> None:
    store = EmbeddedGraphStore()
    store.upsert(EdgeUpdate("TRANSFERS_TO", "a1", "account", "a1", float(t), 1.0) for t in range(3))
    store.compact()
    assert store.neighbours(Node("account", "a1")) == []
    assert store.degree(Node("account", "a1")) == 1


def test_compact_changes_no_answer() -> None:
    rng = random.Random(4)
    store = EmbeddedGraphStore()
    store.upsert(random_updates(rng, 3_000))
    seeds = [random_node(rng) for _ in range(30)]
    before = [store.subgraph([s], hops=2, fanout=3) for s in seeds]
    store.compact()
    assert [store.subgraph([s], hops=2, fanout=3) for s in seeds] == before


# -- snapshots -----------------------------------------------------------------------------------


def answers(store: GraphStore, seeds: list[Node]) -> list[Any]:
    out: list[Any] = [store.counts()]
    for s in seeds:
        out.append(store.edges(s))
        out.append(store.has_node(s))
        out.append(store.degree(s))
        for rel in RELS[:3]:
            out.append(store.degree(s, rel=rel))
        out.append(store.subgraph([s], hops=2, fanout=4))
        out.append(store.subgraph([s], hops=3, fanout=2, since=20.0, until=40.0))
    return out


def test_a_restored_snapshot_gives_identical_answers(tmp_path: Path) -> None:
    rng = random.Random(9)
    store = EmbeddedGraphStore()
    store.upsert(random_updates(rng, 4_000))
    store.upsert([EdgeUpdate("TRANSFERS_TO", "a1", "account", "a1", 3.0, 4.5)])  # a self-loop
    store.delete_personal_data("a3")  # holes in the numbering
    store.delete_personal_data("a7")
    seeds = [random_node(rng) for _ in range(40)] + [Node("account", "a1")]
    path = tmp_path / "graph.snap"
    size = store.snapshot(path)
    assert size == path.stat().st_size
    restored = EmbeddedGraphStore.restore(path)
    assert answers(restored, seeds) == answers(store, seeds)
    # both go on the same way: the same updates and erasures give the same answers
    more = random_updates(rng, 1_000, span=90)
    for s in (store, restored):
        s.upsert(more)
        s.delete_personal_data("a2")
        s.upsert([EdgeUpdate("USES_DEVICE", "a3", "device", "fresh", 95.0)])
    assert answers(restored, seeds) == answers(store, seeds)
    assert repr(restored) == repr(store)


def test_generated_data_survives_a_snapshot(tmp_path: Path, generated_events: list[Any]) -> None:
    store = EmbeddedGraphStore()
    store.upsert_events(generated_events)
    path = tmp_path / "graph.snap"
    store.snapshot(path)
    restored = EmbeddedGraphStore.restore(path)
    accounts = sorted({Node("account", e.account_id) for e in generated_events[:300]})
    assert answers(restored, accounts) == answers(store, accounts)


def test_an_empty_store_round_trips(tmp_path: Path) -> None:
    EmbeddedGraphStore().snapshot(tmp_path / "empty.snap")
    restored = EmbeddedGraphStore.restore(tmp_path / "empty.snap")
    assert restored.counts() == {"nodes": 0, "edges": 0}
    assert restored.upsert([EdgeUpdate("PAYS", "a", "merchant", "m", 1.0, 2.0)]) == 1


def test_snapshots_replace_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "graph.snap"
    store = EmbeddedGraphStore()
    store.upsert([EdgeUpdate("PAYS", "a1", "merchant", "m1", 1.0, 2.0)])
    store.snapshot(path)
    old = path.read_bytes()
    store.upsert([EdgeUpdate("PAYS", "a2", "merchant", "m1", 2.0, 3.0)])
    store.snapshot(path)  # over the old one
    assert EmbeddedGraphStore.restore(path).counts() == {"nodes": 3, "edges": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.snap"]  # no temporary left
    path.write_bytes(old)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.snapshot(path)
    monkeypatch.undo()
    assert path.read_bytes() == old  # the old snapshot, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.snap"]


def test_restore_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    store = EmbeddedGraphStore()
    store.upsert([EdgeUpdate("PAYS", "a1", "merchant", "m1", 1.0, 2.0)])
    good = tmp_path / "good.snap"
    store.snapshot(good)
    data = good.read_bytes()
    header = f"RFGRAPH\n{FORMAT_VERSION}\n".encode()
    assert data.startswith(header)
    cases = {
        "not a graph snapshot": b"PK\x03\x04 a zip file",
        "version b'99'": b"RFGRAPH\n99\n" + data[len(header) :],
        "damaged": data[: len(data) - 7],
        "": b"",
    }
    for i, (message, content) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.snap"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=message or "not a graph snapshot"):
            EmbeddedGraphStore.restore(bad)
    with pytest.raises(FileNotFoundError):
        EmbeddedGraphStore.restore(tmp_path / "missing.snap")


# -- threads -------------------------------------------------------------------------------------


def test_concurrent_writers_and_readers_lose_nothing() -> None:
    rng = random.Random(2)
    batches = [random_updates(rng, 200) for _ in range(40)]
    serial = EmbeddedGraphStore()
    for b in batches:
        serial.upsert(b)
    shared = EmbeddedGraphStore()
    errors: list[BaseException] = []

    def write(part: list[list[EdgeUpdate]]) -> None:
        for b in part:
            shared.upsert(b)

    def read() -> None:
        try:
            for i in range(200):
                shared.subgraph([Node("account", f"a{i % 40}")], hops=2, fanout=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(batches[0::2],)),
        threading.Thread(target=write, args=(batches[1::2],)),
        threading.Thread(target=read),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert shared.counts() == serial.counts()
    # aggregates do not depend on the order batches arrived in, except float sums' last bits
    for node in [Node("account", f"a{i}") for i in range(40)]:
        got, expected = shared.edges(node), serial.edges(node)
        assert [e[:7] for e in got] == [e[:7] for e in expected]
        assert [e.amount for e in got] == pytest.approx([e.amount for e in expected])
