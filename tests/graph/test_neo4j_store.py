"""Neo4j-specific checks of :class:`graph.neo4j_store.Neo4jGraphStore`, on a real server.

The shared contract (same answers as the embedded store) lives in ``test_store_contract.py``;
here: the schema, how repeated batches aggregate in Neo4j's own types, that nothing outside the
whitelists reaches Cypher, the exact tie order at the fan-out cut, and a clear error when the
server is down.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import ConstraintError

from graph.embedded import EmbeddedGraphStore
from graph.model import REL_TARGET, EdgeUpdate, Node
from graph.neo4j_store import LABELS, GraphStoreUnavailable, Neo4jGraphStore
from tests.services.ports import free_port


@pytest.fixture
def neo4j_store(neo4j_uri: str) -> Iterator[Neo4jGraphStore]:
    store = Neo4jGraphStore(neo4j_uri, batch_size=3)  # tiny batches: several per call
    store.clear()
    yield store
    store.close()


def test_constraints_exist_and_opening_again_is_harmless(
    neo4j_store: Neo4jGraphStore, neo4j_uri: str
) -> None:
    expected = {label: f"ringfence_{kind}_id" for kind, label in LABELS.items()}
    assert neo4j_store.constraints() == expected
    Neo4jGraphStore(neo4j_uri).close()  # IF NOT EXISTS: no error, nothing added
    assert neo4j_store.constraints() == expected
    with GraphDatabase.driver(neo4j_uri, auth=None) as driver:
        driver.execute_query("CREATE (:Device {id: 'd1'})")
        with pytest.raises(ConstraintError):
            driver.execute_query("CREATE (:Device {id: 'd1'})")


def test_reapplying_a_batch_aggregates(neo4j_store: Neo4jGraphStore, neo4j_uri: str) -> None:
    batch = [
        EdgeUpdate("PAYS", "a1", "merchant", "m1", 20.0, 5.5),
        EdgeUpdate("PAYS", "a1", "merchant", "m1", 10, 0.1, failed=True),  # an int time
        EdgeUpdate("PAYS", "a1", "merchant", "m1", 30.0, 0.2),
        EdgeUpdate("USES_DEVICE", "a1", "device", "d1", 15.0),
        EdgeUpdate("USES_DEVICE", "a2", "device", "d1", 16.0, failed=True),
    ]
    neo4j_store.upsert(batch)
    neo4j_store.upsert(batch)  # the same events again count again (callers feed each once)
    pays, uses = neo4j_store.edges(Node("account", "a1"))
    assert pays == (
        "PAYS",
        Node("account", "a1"),
        Node("merchant", "m1"),
        10.0,
        30.0,
        6,
        2,
        ((((5.5 + 0.1) + 0.2) + 5.5) + 0.1) + 0.2,  # folded left, like the embedded store
    )
    assert uses[3:] == (15.0, 15.0, 2, 0, 0.0)
    for value, kind in zip(pays[3:], (float, float, int, int, float), strict=True):
        assert type(value) is kind
    assert neo4j_store.counts() == {"nodes": 4, "edges": 3}
    # Neo4j holds the aggregate in its own types: floats and integers, not strings
    with GraphDatabase.driver(neo4j_uri, auth=None) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (:Account {id: 'a1'})-[e:PAYS]->(:Merchant {id: 'm1'}) "
            "RETURN valueType(e.first_seen) AS f, valueType(e.times) AS t, "
            "valueType(e.amount) AS a"
        )
    assert records[0].data() == {
        "f": "FLOAT NOT NULL",
        "t": "INTEGER NOT NULL",
        "a": "FLOAT NOT NULL",
    }


def test_same_answers_as_the_embedded_store_with_many_ties(
    neo4j_store: Neo4jGraphStore,
) -> None:
    neo4j_store.batch_size = 5000
    # integer times over a short range: ties on last_seen straddle the fan-out cut often
    rng = random.Random(11)
    embedded = EmbeddedGraphStore()
    rels = list(REL_TARGET)
    for _ in range(3):
        batch = []
        for _ in range(150):
            rel = rng.choice(rels)
            kind = REL_TARGET[rel]
            dst = f"a{rng.randint(0, 12)}" if kind == "account" else f"{kind}{rng.randint(0, 6)}"
            amount = rng.choice([0.0, 0.1, 2.5, 99.99]) if rel in ("PAYS", "TRANSFERS_TO") else 0.0
            batch.append(
                EdgeUpdate(
                    rel,
                    f"a{rng.randint(0, 12)}",
                    kind,
                    dst,
                    float(rng.randint(0, 6)),
                    amount,
                    rng.random() < 0.3,
                )
            )
        neo4j_store.upsert(batch)
        embedded.upsert(batch)
    assert neo4j_store.counts() == embedded.counts()
    for seed in [Node("account", "a0"), Node("account", "a5"), Node("device", "device1")]:
        assert neo4j_store.edges(seed) == embedded.edges(seed)
        for hops, fanout, since in [(1, 2, None), (2, 3, None), (2, 2, 3.0), (3, 4, None)]:
            got = neo4j_store.subgraph([seed], hops=hops, fanout=fanout, since=since)
            assert got == embedded.subgraph([seed], hops=hops, fanout=fanout, since=since)
    for node in [Node("account", "a3"), Node("merchant", "merchant2"), Node("ip", "ip4")]:
        assert neo4j_store.degree(node) == embedded.degree(node)
        assert neo4j_store.degree(node, rel="PAYS") == embedded.degree(node, rel="PAYS")
    assert neo4j_store.delete_personal_data("a1") == embedded.delete_personal_data("a1")
    assert neo4j_store.counts() == embedded.counts()


class _NoServer:
    """Stands in for the driver: any attempt to talk to Neo4j fails the test."""

    def session(self, **kwargs: object) -> None:
        raise AssertionError("a query reached Neo4j")

    def close(self) -> None:
        pass


def test_a_bad_rel_or_kind_never_reaches_cypher(
    neo4j_store: Neo4jGraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = "PAYS]->() DETACH DELETE a //"
    neo4j_store.upsert([EdgeUpdate("PAYS", "a1", "merchant", "m1", 1.0, 2.0)])
    real = neo4j_store._driver
    monkeypatch.setattr(neo4j_store, "_driver", _NoServer())
    with pytest.raises(ValueError, match="rel"):
        neo4j_store.upsert([EdgeUpdate(evil, "a1", "merchant", "m1", 1.0)])
    with pytest.raises(ValueError, match="rel"):  # the hook checks too, not only the public API
        neo4j_store._upsert([EdgeUpdate(evil, "a1", "merchant", "m1", 1.0)])
    with pytest.raises(ValueError, match="rel"):  # a real rel pointing at the wrong kind
        neo4j_store._upsert([EdgeUpdate("PAYS", "a1", "Merchant {id: 1})//", "m1", 1.0)])
    with pytest.raises(ValueError, match="rel"):
        neo4j_store.degree(Node("account", "a1"), rel=evil)
    with pytest.raises(ValueError, match="rel"):
        neo4j_store._degree(Node("account", "a1"), evil)
    with pytest.raises(ValueError, match="kind"):
        neo4j_store.edges(Node("Account) DETACH DELETE n //", "a1"))
    with pytest.raises(ValueError, match="kind"):
        neo4j_store._adjacent(Node("Account) DETACH DELETE n //", "a1"), None, None)
    with pytest.raises(ValueError, match="kind"):
        neo4j_store._has_node(Node("Merchant|Account", "a1"))
    monkeypatch.setattr(neo4j_store, "_driver", real)
    assert neo4j_store.counts() == {"nodes": 2, "edges": 1}
    # ids are parameters: stored as written, whatever they look like
    odd = "x'}) DETACH DELETE n //\"`"
    neo4j_store.upsert([EdgeUpdate("USES_DEVICE", odd, "device", odd, 2.0)])
    assert neo4j_store.has_node(Node("account", odd))
    assert neo4j_store.neighbours(Node("device", odd)) == [Node("account", odd)]
    assert neo4j_store.counts() == {"nodes": 4, "edges": 2}


def test_a_server_that_is_down_gives_a_clear_error() -> None:
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(GraphStoreUnavailable, match="cannot be reached") as info:
        Neo4jGraphStore(uri)
    assert uri in str(info.value)
    assert info.value.is_retryable()
