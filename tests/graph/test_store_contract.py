"""The ``GraphStore`` contract: every backend in ``conftest.BACKENDS`` must give these answers.

Answers are asserted exactly (ordering, floats and ints included), so backends that pass agree
with each other. Times in the hand-made graphs are small floats; the event tests use real
canonical events from :mod:`ingest.events`; the last test replays a generated data set and
compares every answer with :class:`Reference`, the contract written as plainly as possible.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from graph.model import REL_TARGET, EdgeUpdate, Node, edges_from_event
from graph.store import RELS, Edge, GraphStore, Subgraph, edge_sort_key
from ingest.events import AccountEvent, DeviceEvent, Login, Transaction

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def ts(minute: float) -> float:
    return at(minute).timestamp()


def A(i: str) -> Node:
    return Node("account", i)


def D(i: str) -> Node:
    return Node("device", i)


def I(i: str) -> Node:  # noqa: E743
    return Node("ip", i)


def M(i: str) -> Node:
    return Node("merchant", i)


def U(
    rel: str, src: str, dst: str, t: float, amount: float = 0.0, failed: bool = False
) -> EdgeUpdate:
    return EdgeUpdate(rel, src, REL_TARGET[rel], dst, float(t), amount, failed)


def txn(txn_id: str, account: str, minute: float, amount: str = "10.00", **kw: Any) -> Transaction:
    channel = kw.pop("channel", "card_not_present")
    return Transaction(
        txn_id=txn_id,
        timestamp=at(minute),
        source="bank_a",
        account_id=account,
        amount=Decimal(amount),
        currency="EUR",
        channel=channel,
        **kw,
    )


# -- aggregation ---------------------------------------------------------------------------------


def test_repeated_observations_aggregate(store: GraphStore) -> None:
    updates = [
        U("PAYS", "a1", "m1", 200, 10.5),
        U("PAYS", "a1", "m1", 100, 2.25, failed=True),  # earlier, arriving later
        U("PAYS", "a1", "m1", 300, 0.25),
    ]
    assert store.upsert(updates[:2]) == 2
    assert store.upsert(iter(updates[2:])) == 1  # any iterable
    expected = [Edge("PAYS", A("a1"), M("m1"), 100.0, 300.0, 3, 1, 13.0)]
    assert store.edges(A("a1")) == expected
    assert store.edges(M("m1")) == expected
    got = store.edges(M("m1"))[0]
    kinds = (float, float, int, int, float)
    assert [type(v) for v in got[3:]] == list(kinds)
    assert store.counts() == {"nodes": 2, "edges": 1}
    # the same observations fed again count again: callers feed each event once
    store.upsert(updates)
    assert store.edges(A("a1")) == [
        Edge("PAYS", A("a1"), M("m1"), 100.0, 300.0, 6, 2, ((13.0 + 10.5) + 2.25) + 0.25)
    ]


def test_an_empty_batch_is_a_no_op(store: GraphStore) -> None:
    assert store.upsert([]) == 0
    assert store.upsert_events([]) == 0
    assert store.counts() == {"nodes": 0, "edges": 0}


# -- each kind of edge, from canonical events --------------------------------------------------


def test_transactions_make_every_kind_of_edge(store: GraphStore) -> None:
    events = [
        txn(
            "t1",
            "acc_1",
            0,
            "25.50",
            card_id="card_9",
            email="Ann@Example.COM",
            phone="+447700900123",
            billing_address=" 12  High St,, Leeds ",
            merchant_id="mer_1",
            device_id="dev_1",
            ip="203.0.113.5",
        ),
        txn(
            "t2",
            "acc_1",
            10,
            "4.25",
            card_id="card_9",
            merchant_id="mer_1",
            device_id="dev_1",
            status="declined",
        ),
        txn(
            "t3",
            "acc_1",
            20,
            "250.00",
            channel="transfer",
            counterparty_account_id="acc_2",
            ip="203.0.113.5",
        ),
        txn(
            "t4",
            "acc_1",
            30,
            "0.25",
            card_id="card_9",
            merchant_id="mer_1",
            email="ann@example.com",
            status="reversed",
        ),
    ]
    assert store.upsert_events(events) == 7 + 3 + 2 + 3
    a1 = A("acc_1")
    assert store.edges(a1) == [
        Edge("FROM_IP", a1, I("203.0.113.5"), ts(0), ts(20), 2, 0, 0.0),
        Edge("HAS_ADDRESS", a1, Node("address", "12 high st leeds"), ts(0), ts(0), 1, 0, 0.0),
        Edge("HAS_CARD", a1, Node("card", "card_9"), ts(0), ts(30), 3, 2, 0.0),
        Edge("HAS_EMAIL", a1, Node("email", "ann@example.com"), ts(0), ts(30), 2, 1, 0.0),
        Edge("HAS_PHONE", a1, Node("phone", "+447700900123"), ts(0), ts(0), 1, 0, 0.0),
        Edge("PAYS", a1, M("mer_1"), ts(0), ts(30), 3, 2, 30.0),
        Edge("TRANSFERS_TO", a1, A("acc_2"), ts(20), ts(20), 1, 0, 250.0),
        Edge("USES_DEVICE", a1, D("dev_1"), ts(0), ts(10), 2, 1, 0.0),
    ]
    assert store.edges(A("acc_2")) == [
        Edge("TRANSFERS_TO", a1, A("acc_2"), ts(20), ts(20), 1, 0, 250.0)
    ]
    assert store.counts() == {"nodes": 9, "edges": 8}


def test_logins_count_failures(store: GraphStore) -> None:
    def login(event_id: str, minute: float, success: bool, **kw: Any) -> Login:
        return Login(
            event_id=event_id,
            timestamp=at(minute),
            account_id="acc_1",
            success=success,
            mfa_used=False,
            **kw,
        )

    events = [
        login("l1", 0, True, device_id="dev_1", ip="198.51.100.7"),
        login("l2", 5, False, device_id="dev_1", ip="198.51.100.7", failure_reason="password"),
        login("l3", 7, False, device_id="dev_2"),
        login("l4", 9, True),  # neither device nor IP: no edge
    ]
    assert store.upsert_events(events) == 5
    a1 = A("acc_1")
    assert store.edges(a1) == [
        Edge("FROM_IP", a1, I("198.51.100.7"), ts(0), ts(5), 2, 1, 0.0),
        Edge("USES_DEVICE", a1, D("dev_1"), ts(0), ts(5), 2, 1, 0.0),
        Edge("USES_DEVICE", a1, D("dev_2"), ts(7), ts(7), 1, 1, 0.0),
    ]
    assert store.upsert_events([login("l5", 9, True)]) == 0


def test_account_events_link_new_contact_details(store: GraphStore) -> None:
    def change(event_id: str, minute: float, kind: str, **kw: Any) -> AccountEvent:
        return AccountEvent(
            event_id=event_id, timestamp=at(minute), account_id="acc_1", kind=kind, **kw
        )

    events = [
        change(
            "e1", 0, "email_changed", new_value="New@Example.COM", device_id="dev_1", ip="192.0.2.1"
        ),
        change("e2", 1, "phone_changed", new_value="+447700900999"),
        change("e3", 2, "address_changed", new_value="1 Low Rd,  York"),
        change("e4", 3, "password_reset", device_id="dev_1"),
        change("e5", 4, "opened"),
        change("e6", 5, "closed", ip="192.0.2.1"),
    ]
    assert store.upsert_events(events) == 3 + 1 + 1 + 1 + 0 + 1
    a1 = A("acc_1")
    assert store.edges(a1) == [
        Edge("FROM_IP", a1, I("192.0.2.1"), ts(0), ts(5), 2, 0, 0.0),
        Edge("HAS_ADDRESS", a1, Node("address", "1 low rd york"), ts(2), ts(2), 1, 0, 0.0),
        Edge("HAS_EMAIL", a1, Node("email", "new@example.com"), ts(0), ts(0), 1, 0, 0.0),
        Edge("HAS_PHONE", a1, Node("phone", "+447700900999"), ts(1), ts(1), 1, 0, 0.0),
        Edge("USES_DEVICE", a1, D("dev_1"), ts(0), ts(3), 2, 0, 0.0),
    ]


def test_device_events_need_an_account(store: GraphStore) -> None:
    events = [
        DeviceEvent(
            event_id="d1",
            timestamp=at(0),
            device_id="dev_7",
            account_id="acc_1",
            ip="192.0.2.9",
            emulator=True,
        ),
        DeviceEvent(event_id="d2", timestamp=at(1), device_id="dev_8", ip="192.0.2.9"),
    ]
    assert store.upsert_events(events) == 2
    assert store.edges(D("dev_7")) == [
        Edge("USES_DEVICE", A("acc_1"), D("dev_7"), ts(0), ts(0), 1, 0, 0.0)
    ]
    assert not store.has_node(D("dev_8"))
    assert store.counts() == {"nodes": 3, "edges": 2}


# -- reads -------------------------------------------------------------------------------------


def test_edges_lists_both_directions_sorted(store: GraphStore) -> None:
    store.upsert(
        [
            U("USES_DEVICE", "acc_b", "d1", 1),
            U("TRANSFERS_TO", "acc_c", "acc_b", 2, 5.0),
            U("TRANSFERS_TO", "acc_b", "acc_a", 3, 7.5),
            U("TRANSFERS_TO", "acc_a", "acc_b", 4, 1.25),
            U("PAYS", "acc_a", "m1", 5, 3.0),
        ]
    )
    b = A("acc_b")
    got = store.edges(b)
    assert got == [
        Edge("TRANSFERS_TO", A("acc_a"), b, 4.0, 4.0, 1, 0, 1.25),
        Edge("TRANSFERS_TO", b, A("acc_a"), 3.0, 3.0, 1, 0, 7.5),
        Edge("TRANSFERS_TO", A("acc_c"), b, 2.0, 2.0, 1, 0, 5.0),
        Edge("USES_DEVICE", b, D("d1"), 1.0, 1.0, 1, 0, 0.0),
    ]
    assert got == sorted(got, key=edge_sort_key)
    assert store.edges(A("nobody")) == []


def small_graph(store: GraphStore) -> None:
    """a1 -d1- a2 -i1- a3, a1 -> m1 <- a4."""
    store.upsert(
        [
            U("USES_DEVICE", "a1", "d1", 10),
            U("USES_DEVICE", "a2", "d1", 11),
            U("FROM_IP", "a2", "i1", 12),
            U("FROM_IP", "a3", "i1", 13),
            U("PAYS", "a1", "m1", 14, 9.5),
            U("PAYS", "a4", "m1", 15, 20.0),
        ]
    )


def test_neighbours_by_hops(store: GraphStore) -> None:
    small_graph(store)
    assert store.neighbours(A("a1"), hops=0) == []
    assert store.neighbours(A("a1")) == [D("d1"), M("m1")]
    assert store.neighbours(A("a1"), hops=2) == [A("a2"), A("a4"), D("d1"), M("m1")]
    assert store.neighbours(A("a1"), hops=3) == [A("a2"), A("a4"), D("d1"), I("i1"), M("m1")]
    assert store.neighbours(A("a1"), hops=4) == [
        A("a2"),
        A("a3"),
        A("a4"),
        D("d1"),
        I("i1"),
        M("m1"),
    ]
    assert store.neighbours(I("i1")) == [A("a2"), A("a3")]
    assert store.neighbours(("device", "d1")) == [A("a1"), A("a2")]  # type: ignore[arg-type]
    assert store.neighbours(A("nobody"), hops=2) == []


def test_subgraph_returns_nodes_and_the_edges_followed(store: GraphStore) -> None:
    small_graph(store)
    sg = store.subgraph([A("a1"), A("nobody"), M("m1")], hops=1)
    assert sg == Subgraph(
        nodes=[A("a1"), A("a4"), D("d1"), M("m1")],
        edges=[
            Edge("PAYS", A("a1"), M("m1"), 14.0, 14.0, 1, 0, 9.5),
            Edge("PAYS", A("a4"), M("m1"), 15.0, 15.0, 1, 0, 20.0),
            Edge("USES_DEVICE", A("a1"), D("d1"), 10.0, 10.0, 1, 0, 0.0),
        ],
    )
    assert store.subgraph([D("d1")], hops=0) == Subgraph([D("d1")], [])
    assert store.subgraph([D("nowhere")], hops=2) == Subgraph([], [])
    assert store.subgraph([], hops=2) == Subgraph([], [])


def hub(store: GraphStore) -> None:
    """i1 used by a1..a6; a3 the most recent, a2, a4 and a5 tied."""
    store.upsert(
        [
            U("FROM_IP", "a1", "i1", 10),
            U("FROM_IP", "a5", "i1", 20),
            U("FROM_IP", "a2", "i1", 20),
            U("FROM_IP", "a3", "i1", 30),
            U("FROM_IP", "a4", "i1", 20),
            U("FROM_IP", "a6", "i1", 5),
        ]
    )


@pytest.mark.parametrize(
    ("fanout", "expected"),
    [
        (1, ["a3"]),
        (2, ["a2", "a3"]),  # a3, then the first of the tie at 20 by id
        (3, ["a2", "a3", "a4"]),
        (4, ["a2", "a3", "a4", "a5"]),
        (5, ["a1", "a2", "a3", "a4", "a5"]),
        (6, ["a1", "a2", "a3", "a4", "a5", "a6"]),
        (50, ["a1", "a2", "a3", "a4", "a5", "a6"]),
    ],
)
def test_fanout_keeps_the_most_recent_then_ties_by_id(
    store: GraphStore, fanout: int, expected: list[str]
) -> None:
    hub(store)
    assert store.neighbours(I("i1"), fanout=fanout) == [A(a) for a in expected]


def test_ties_break_by_kind_then_id(store: GraphStore) -> None:
    store.upsert(
        [
            U("FROM_IP", "a1", "aaa", 7),
            U("USES_DEVICE", "a1", "zzz", 7),
            U("USES_DEVICE", "a1", "yyy", 7),
            U("PAYS", "a1", "bbb", 6, 1.0),
        ]
    )
    assert store.neighbours(A("a1"), fanout=1) == [D("yyy")]  # device < ip, then by id
    assert store.neighbours(A("a1"), fanout=2) == [D("yyy"), D("zzz")]
    assert store.neighbours(A("a1"), fanout=3) == [D("yyy"), D("zzz"), I("aaa")]


def test_a_full_tie_breaks_by_source_id(store: GraphStore) -> None:
    # acc_a -> acc_b and acc_b -> acc_a at the same time: same neighbour, same rel
    store.upsert(
        [U("TRANSFERS_TO", "acc_b", "acc_a", 5, 1.0), U("TRANSFERS_TO", "acc_a", "acc_b", 5, 2.0)]
    )
    for seed in (A("acc_a"), A("acc_b")):
        sg = store.subgraph([seed], hops=1, fanout=1)
        assert sg.edges == [Edge("TRANSFERS_TO", A("acc_a"), A("acc_b"), 5.0, 5.0, 1, 0, 2.0)]
        assert sg.nodes == [A("acc_a"), A("acc_b")]


def test_fanout_counts_edges_followed_from_both_ends(store: GraphStore) -> None:
    store.upsert(
        [
            U("USES_DEVICE", "a1", "d1", 10),
            U("USES_DEVICE", "a1", "d2", 20),
            U("USES_DEVICE", "a2", "d2", 5),
            U("USES_DEVICE", "a2", "d1", 30),
        ]
    )
    # from a1: its newest edge leads to d2, whose newest edge leads straight back
    sg = store.subgraph([A("a1")], hops=2, fanout=1)
    assert sg == Subgraph(
        [A("a1"), D("d2")], [Edge("USES_DEVICE", A("a1"), D("d2"), 20.0, 20.0, 1, 0, 0.0)]
    )
    sg = store.subgraph([A("a1")], hops=2, fanout=2)
    assert sg.nodes == [A("a1"), A("a2"), D("d1"), D("d2")]
    assert [(e.src.id, e.dst.id) for e in sg.edges] == [
        ("a1", "d1"),
        ("a1", "d2"),
        ("a2", "d1"),
        ("a2", "d2"),
    ]
    sg = store.subgraph([A("a2")], hops=3, fanout=1)
    assert sg.nodes == [A("a2"), D("d1")]


def test_time_bounds_keep_overlapping_edges(store: GraphStore) -> None:
    store.upsert(
        [
            U("USES_DEVICE", "a1", "d1", 10),
            U("USES_DEVICE", "a1", "d1", 20),
            U("USES_DEVICE", "a1", "d2", 30),
            U("USES_DEVICE", "a1", "d2", 40),
            U("FROM_IP", "a1", "i1", 5),
            U("FROM_IP", "a1", "i1", 50),
            U("FROM_IP", "a2", "i1", 45),
        ]
    )
    a1 = A("a1")

    def ids(**bounds: float) -> list[str]:
        return [e.dst.id for e in store.edges(a1, **bounds)]

    assert ids() == ["i1", "d1", "d2"]
    assert ids(since=21, until=29) == ["i1"]
    assert ids(since=20) == ["i1", "d1", "d2"]  # bounds are inclusive
    assert ids(until=30) == ["i1", "d1", "d2"]
    assert ids(until=29.5) == ["i1", "d1"]
    assert ids(since=40.5) == ["i1"]
    assert ids(since=51) == []
    assert ids(until=4) == []
    assert ids(since=25, until=25) == ["i1"]
    # the fan-out cap applies among the edges within the bounds
    assert store.neighbours(a1, fanout=1) == [I("i1")]
    assert store.neighbours(a1, fanout=1, until=9) == [I("i1")]
    assert store.neighbours(a1, fanout=1, since=0, until=12) == [I("i1")]
    assert store.neighbours(a1, fanout=2, until=25) == [D("d1"), I("i1")]
    assert store.neighbours(a1, hops=2, since=46) == [I("i1")]  # a2 last used it at 45
    assert store.neighbours(a1, hops=2, since=45) == [A("a2"), I("i1")]
    assert store.neighbours(a1, hops=2, until=15) == [D("d1"), I("i1")]


def test_degree_counts_edges_by_rel(store: GraphStore) -> None:
    small_graph(store)
    store.upsert([U("TRANSFERS_TO", "a1", "a2", 20, 5.0), U("TRANSFERS_TO", "a3", "a1", 21, 1.0)])
    store.upsert([U("USES_DEVICE", "a1", "d1", 22)])  # again: still one edge
    assert store.degree(A("a1")) == 4
    assert store.degree(A("a1"), rel="TRANSFERS_TO") == 2
    assert store.degree(A("a1"), rel="USES_DEVICE") == 1
    assert store.degree(A("a1"), rel="FROM_IP") == 0
    assert store.degree(D("d1")) == 2
    assert store.degree(D("d1"), rel="USES_DEVICE") == 2
    assert store.degree(D("d1"), rel="PAYS") == 0
    assert store.degree(M("m1"), rel="PAYS") == 2
    assert store.degree(A("nobody")) == 0


def test_has_node_and_counts(store: GraphStore) -> None:
    assert store.counts() == {"nodes": 0, "edges": 0}
    small_graph(store)
    assert store.has_node(A("a4"))
    assert store.has_node(("ip", "i1"))  # type: ignore[arg-type]
    assert not store.has_node(D("i1"))  # same id, other kind
    assert not store.has_node(A("nobody"))
    assert store.counts() == {"nodes": 7, "edges": 6}


def test_a_self_loop_is_one_edge(store: GraphStore) -> None:
    store.upsert(
        [
            U("TRANSFERS_TO", "a1", "a1", 10, 5.0),
            U("TRANSFERS_TO", "a1", "a1", 20, 2.5),
            U("USES_DEVICE", "a1", "d1", 15),
        ]
    )
    loop = Edge("TRANSFERS_TO", A("a1"), A("a1"), 10.0, 20.0, 2, 0, 7.5)
    assert store.edges(A("a1")) == [
        loop,
        Edge("USES_DEVICE", A("a1"), D("d1"), 15.0, 15.0, 1, 0, 0.0),
    ]
    assert store.degree(A("a1")) == 2
    assert store.degree(A("a1"), rel="TRANSFERS_TO") == 1
    assert store.counts() == {"nodes": 2, "edges": 2}
    assert store.neighbours(A("a1")) == [D("d1")]
    assert store.subgraph([A("a1")], hops=2, fanout=1) == Subgraph([A("a1")], [loop])
    assert store.delete_personal_data("a1") == 2
    assert store.counts() == {"nodes": 0, "edges": 0}


# -- erasure -----------------------------------------------------------------------------------


def test_delete_personal_data_keeps_what_others_share(store: GraphStore) -> None:
    store.upsert(
        [
            U("USES_DEVICE", "a1", "own_device", 1),
            U("USES_DEVICE", "a1", "shared_device", 2),
            U("USES_DEVICE", "a2", "shared_device", 3),
            U("HAS_EMAIL", "a1", "a1@example.com", 4),
            U("PAYS", "a1", "m1", 5, 12.0),  # a1 is m1's only customer
            U("TRANSFERS_TO", "a1", "a3", 6, 50.0),  # a3 has no other edge
            U("TRANSFERS_TO", "a4", "a1", 7, 8.0),
            U("FROM_IP", "a4", "i4", 8),
        ]
    )
    assert store.delete_personal_data("a1") == 6
    assert not store.has_node(A("a1"))
    assert not store.has_node(D("own_device"))  # identifiers left with no edge go
    assert not store.has_node(Node("email", "a1@example.com"))
    assert store.has_node(D("shared_device"))
    assert store.edges(D("shared_device")) == [
        Edge("USES_DEVICE", A("a2"), D("shared_device"), 3.0, 3.0, 1, 0, 0.0)
    ]
    # merchants and other accounts are not identifiers: they stay, even with no edge left
    assert store.has_node(M("m1"))
    assert store.degree(M("m1")) == 0
    assert store.has_node(A("a3"))
    assert store.edges(A("a4")) == [Edge("FROM_IP", A("a4"), I("i4"), 8.0, 8.0, 1, 0, 0.0)]
    assert store.counts() == {"nodes": 6, "edges": 2}
    assert store.neighbours(A("a2"), hops=4) == [D("shared_device")]
    assert store.delete_personal_data("a1") == 0
    assert store.delete_personal_data("nobody") == 0
    # the account can come back, with nothing of its past
    store.upsert([U("USES_DEVICE", "a1", "shared_device", 9)])
    assert store.edges(A("a1")) == [
        Edge("USES_DEVICE", A("a1"), D("shared_device"), 9.0, 9.0, 1, 0, 0.0)
    ]
    assert store.counts() == {"nodes": 7, "edges": 3}


def test_erasing_an_identifier_leaves_the_accounts_that_used_it(store: GraphStore) -> None:
    email = Node("email", "shared@example.com")
    store.upsert(
        [
            U("HAS_EMAIL", "a1", "shared@example.com", 1),
            U("HAS_EMAIL", "a2", "shared@example.com", 2),
            U("USES_DEVICE", "a1", "d1", 3),
        ]
    )
    assert store.delete_personal_data(email) == 2
    assert not store.has_node(email)
    assert store.has_node(A("a1"))
    assert store.has_node(A("a2"))
    assert store.edges(A("a1")) == [Edge("USES_DEVICE", A("a1"), D("d1"), 3.0, 3.0, 1, 0, 0.0)]
    assert store.neighbours(A("a2"), hops=3) == []
    assert store.counts() == {"nodes": 3, "edges": 1}
    assert store.delete_personal_data(email) == 0
    # erasing a device by node works the same way; an account by node as by id
    assert store.delete_personal_data(D("d1")) == 1
    assert store.counts() == {"nodes": 2, "edges": 0}
    assert store.delete_personal_data(A("a1")) == 0  # no edge left, but the node goes
    assert store.counts() == {"nodes": 1, "edges": 0}


def test_subgraph_columns_hold_the_same_edges(store: GraphStore) -> None:
    small_graph(store)
    sg = store.subgraph([A("a1")], hops=2, fanout=2)
    c = sg.columns
    assert sorted(c.nodes) == sg.nodes
    rebuilt = sorted(
        Edge(
            RELS[int(c.rel[i])],
            c.nodes[int(c.src[i])],
            c.nodes[int(c.dst[i])],
            float(c.first_seen[i]),
            float(c.last_seen[i]),
            int(c.times[i]),
            int(c.failures[i]),
            float(c.amount[i]),
        )
        for i in range(len(c.rel))
    )
    assert rebuilt == sg.edges
    assert len(sg.edges) > 2
    assert Subgraph.from_columns(c) == sg


# -- validation --------------------------------------------------------------------------------

HOOKS = ("_upsert", "_adjacent", "_subgraph", "_degree", "_has_node", "_counts", "_delete_node")


def test_bad_arguments_are_refused_before_the_backend_is_touched(
    store: GraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.upsert([U("PAYS", "a1", "m1", 1, 2.0)])

    def reached(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backend was reached")

    for hook in HOOKS:
        monkeypatch.setattr(store, hook, reached)
    good = U("USES_DEVICE", "a1", "d1", 1)
    with pytest.raises(ValueError, match="rel"):
        store.upsert([good, EdgeUpdate("PAYS", "a1", "device", "d1", 1.0)])
    with pytest.raises(ValueError, match="rel"):
        store.upsert([EdgeUpdate("OWNS", "a1", "device", "d1", 1.0)])
    with pytest.raises(ValueError, match="node"):
        store.edges(Node("person", "p1"))
    with pytest.raises(ValueError, match="node"):
        store.edges(Node("account", ""))
    with pytest.raises(ValueError, match="node"):
        store.has_node(("Account", "a1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node"):
        store.subgraph([A("a1"), ("device",)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="node"):
        store.delete_personal_data("")
    with pytest.raises(ValueError, match="node"):
        store.delete_personal_data(Node("person", "p1"))
    with pytest.raises(ValueError, match="since"):
        store.edges(A("a1"), since=5, until=4)
    with pytest.raises(ValueError, match="since"):
        store.neighbours(A("a1"), since=5, until=4)
    for hops in (-1, 5):
        with pytest.raises(ValueError, match="hops"):
            store.neighbours(A("a1"), hops=hops)
    with pytest.raises(ValueError, match="fanout"):
        store.subgraph([A("a1")], fanout=0)
    with pytest.raises(ValueError, match="rel"):
        store.degree(A("a1"), rel="OWNS")
    assert store.upsert([]) == 0
    monkeypatch.undo()
    assert store.counts() == {"nodes": 2, "edges": 1}  # nothing of the refused batch applied


# -- a generated data set, against the reference -------------------------------------------------


class Reference:
    """The contract of :mod:`graph.store`, written as plainly as possible (slow, obvious)."""

    def __init__(self, updates: Iterable[EdgeUpdate]) -> None:
        self.agg: dict[tuple[str, str, str, str], list[Any]] = {}
        for u in updates:
            key = (u.rel, u.src_id, u.dst_kind, u.dst_id)
            a = self.agg.get(key)
            if a is None:
                self.agg[key] = [u.ts, u.ts, 1, int(u.failed), u.amount]
            else:
                a[0], a[1] = min(a[0], u.ts), max(a[1], u.ts)
                a[2] += 1
                a[3] += int(u.failed)
                a[4] += u.amount
        self.all = sorted(
            (
                Edge(rel, A(src), Node(kind, dst), float(f), float(la), t, fl, float(am))
                for (rel, src, kind, dst), (f, la, t, fl, am) in self.agg.items()
            ),
            key=edge_sort_key,
        )
        self.touching: dict[Node, list[Edge]] = {}
        for e in self.all:
            self.touching.setdefault(e.src, []).append(e)
            if e.dst != e.src:
                self.touching.setdefault(e.dst, []).append(e)

    def nodes(self) -> list[Node]:
        return sorted(self.touching)

    def edges(
        self, node: Node, since: float | None = None, until: float | None = None
    ) -> list[Edge]:
        return [
            e
            for e in self.touching.get(node, [])
            if (since is None or e.last_seen >= since) and (until is None or e.first_seen <= until)
        ]

    def subgraph(
        self,
        seeds: Sequence[Node],
        hops: int,
        fanout: int,
        since: float | None,
        until: float | None,
    ) -> Subgraph:
        seen = {n for n in seeds if n in self.touching}
        frontier = sorted(seen)
        followed: set[Edge] = set()
        for _ in range(hops):
            reached = []
            for node in frontier:

                def order(e: Edge, node: Node = node) -> tuple[float, str, str, str, str]:
                    other = e.dst if e.src == node else e.src
                    return (-e.last_seen, other.kind, other.id, e.rel, e.src.id)

                for e in sorted(self.edges(node, since, until), key=order)[:fanout]:
                    followed.add(e)
                    other = e.dst if e.src == node else e.src
                    if other not in seen:
                        seen.add(other)
                        reached.append(other)
            frontier = sorted(reached)
        return Subgraph(sorted(seen), sorted(followed, key=edge_sort_key))


def test_a_generated_data_set_gives_the_reference_answers(
    store: GraphStore, generated_events: list[Any]
) -> None:
    events = generated_events
    updates = [u for e in events for u in edges_from_event(e)]
    ref = Reference(updates)
    assert store.upsert_events(events) == len(updates)
    assert store.counts() == {"nodes": len(ref.nodes()), "edges": len(ref.all)}

    accounts = sorted({n for n in ref.touching if n.kind == "account"})
    with_edges = {e.account_id for e in events if edges_from_event(e)}
    assert with_edges <= {a.id for a in accounts}
    assert all(store.has_node(A(a)) for a in with_edges)
    # every edge, listed from its source account, exactly as the reference aggregates it
    out_edges = [e for a in accounts for e in store.edges(a) if e.src == a]
    assert sorted(out_edges, key=edge_sort_key) == ref.all
    transfers = [e for e in events if e.event_type == "transaction" and e.counterparty_account_id]
    assert sum(e.times for e in out_edges if e.rel == "TRANSFERS_TO") == len(transfers)
    payments = [e for e in events if e.event_type == "transaction" and e.merchant_id]
    assert sum(e.times for e in out_edges if e.rel == "PAYS") == len(payments)
    assert sum(e.amount for e in out_edges if e.rel == "PAYS") == pytest.approx(
        float(sum(e.amount for e in payments))
    )
    failed = sum(1 for u in updates if u.failed)
    assert failed > 0
    assert sum(e.failures for e in out_edges) == failed
    logins = [e for e in events if e.event_type == "login" and e.device_id is not None]
    assert sum(e.times for e in out_edges if e.rel == "USES_DEVICE") >= len(logins)

    # neighbourhoods from accounts and from the most shared identifiers, with caps and bounds
    rng = random.Random(3)
    by_degree = sorted(ref.touching, key=lambda n: (-len(ref.touching[n]), n))
    seeds = rng.sample(accounts, 12) + [n for n in by_degree if n.kind != "account"][:4]
    times = sorted(u.ts for u in updates)
    middle = times[len(times) // 2]
    for seed in seeds:
        assert store.edges(seed) == ref.edges(seed)
        assert store.degree(seed) == len(ref.edges(seed))
        for hops, fanout, since, until in [
            (1, 50, None, None),
            (2, 3, None, None),
            (2, 10, middle, None),
            (2, 5, None, middle),
            (3, 4, times[len(times) // 4], times[3 * len(times) // 4]),
        ]:
            got = store.subgraph([seed], hops=hops, fanout=fanout, since=since, until=until)
            assert got == ref.subgraph([seed], hops, fanout, since, until), (seed, hops, fanout)
    two = seeds[:2]
    assert store.subgraph(two, hops=2, fanout=7) == ref.subgraph(two, 2, 7, None, None)
