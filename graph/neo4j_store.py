"""The Neo4j graph store: the entity graph in Neo4j 5 over Bolt, with the official driver.

Schema. One label per node kind (``Account``, ``Card``, ``Device``, ``Ip``, ``Merchant``,
``Email``, ``Phone``, ``Address``) with a unique ``id`` (a constraint per label, created when the
store opens); one relationship type per edge kind (``USES_DEVICE``, ``PAYS``...), always from the
account, holding the aggregate: ``first_seen``, ``last_seen`` (floats, epoch seconds),
``times``, ``failures`` (integers) and ``amount`` (float).

Writes. :meth:`GraphStore.upsert` first aggregates the batch in Python (one row per edge: the
earliest and latest time, counts, and the non-zero amounts in order), then sends, per
``batch_size`` rows, one write transaction holding one ``UNWIND $rows AS r MERGE ... ON CREATE
SET ... ON MATCH SET ...`` query per edge kind. Amounts are folded left in Cypher
(``reduce``), so sums are bit-for-bit those of the embedded store, which adds them one by one.
Each batch commits on its own: a failure part-way leaves earlier batches applied.

Cypher is parameterised: ids and values travel as parameters; labels and relationship types are
spliced in only from the fixed tables below (a kind or rel outside them raises ``ValueError``
before anything is sent). Reads run in read transactions; the driver's managed transactions
retry transient failures (deadlocks, leader switches) for up to 30 s.

Subgraphs. The walk of :meth:`GraphStore.subgraph` runs one query per hop for the whole
frontier: each node's ``fanout + 1`` most recent edges (a top-k in Neo4j, so a hub's 100,000
edges are never shipped), cut to ``fanout`` in Python with the exact tie order of
:mod:`graph.store`; when ties on ``last_seen`` straddle the cut, the tied edges are fetched too.

Errors. A server that cannot be reached raises :class:`GraphStoreUnavailable` (retryable), with
the URI; other driver errors propagate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final, LiteralString, cast

from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from graph.model import IDENTIFIER_RELS, NODE_KINDS, REL_TARGET, EdgeUpdate, Node
from graph.store import Edge, GraphStore, Subgraph, edge_sort_key
from ingest.errors import RingfenceError

LABELS: Final[dict[str, LiteralString]] = {
    "account": "Account",
    "card": "Card",
    "device": "Device",
    "ip": "Ip",
    "merchant": "Merchant",
    "email": "Email",
    "phone": "Phone",
    "address": "Address",
}
"""Node kind -> label. Only these labels ever appear in a query."""

KINDS: Final = {label: kind for kind, label in LABELS.items()}

_CHECKPOINT: Final = "RingfenceCheckpoint"
"""Label of the nodes that record, per follower stream, the bus offset the graph reflects."""

REL_TYPES: Final[dict[str, LiteralString]] = {
    "USES_DEVICE": "USES_DEVICE",
    "FROM_IP": "FROM_IP",
    "HAS_CARD": "HAS_CARD",
    "HAS_EMAIL": "HAS_EMAIL",
    "HAS_PHONE": "HAS_PHONE",
    "HAS_ADDRESS": "HAS_ADDRESS",
    "PAYS": "PAYS",
    "TRANSFERS_TO": "TRANSFERS_TO",
}
"""Edge kind -> relationship type. Only these types ever appear in a query."""

assert set(LABELS) == set(NODE_KINDS)
assert set(REL_TYPES) == set(REL_TARGET)

_IDENTIFIER_LABELS: Final = tuple(LABELS[REL_TARGET[r]] for r in IDENTIFIER_RELS)

_BOUNDS: Final = (
    "($since IS NULL OR r.last_seen >= $since) AND ($until IS NULL OR r.first_seen <= $until)"
)

_EDGE_FIELDS: Final = (
    "type(r) AS rel, startNode(r) = n AS out, labels(m)[0] AS label, m.id AS id, "
    "r.first_seen AS first_seen, r.last_seen AS last_seen, r.times AS times, "
    "r.failures AS failures, r.amount AS amount"
)

_FRONTIER: Final = " UNION ALL ".join(
    f"UNWIND $ids.{kind} AS id MATCH (n:{label} {{id: id}}) RETURN n"
    for kind, label in LABELS.items()
)
"""A subquery yielding the nodes listed in ``$ids`` (a map kind -> ids), by index lookups."""

_DELETE: Final[dict[str, LiteralString]] = {
    kind: cast(
        LiteralString,
        f"MATCH (a:{label} {{id: $id}}) "
        "OPTIONAL MATCH (a)-[r]-() "
        "WITH a, count(DISTINCT r) AS removed "
        "OPTIONAL MATCH (a)--(m) WHERE "
        + " OR ".join(f"m:{ident}" for ident in _IDENTIFIER_LABELS)
        + " WITH a, removed, collect(DISTINCT m) AS idents "
        "DETACH DELETE a "
        "WITH removed, idents "
        "CALL (idents) { UNWIND idents AS m WITH m WHERE NOT (m)--() DELETE m } "
        "RETURN removed",
    )
    for kind, label in LABELS.items()
}
"""Erase a node, its edges, and the identifiers (not merchants or accounts) left alone."""

_Row = list[Any]
"""An aggregated edge: src, dst, first, last, times, failures, amounts (non-zero, in order)."""


class CheckpointConflict(RingfenceError):
    """A follower's checkpoint is not where the writer expected: another writer moved it."""


class GraphStoreUnavailable(RingfenceError):
    """The graph database cannot be reached (down, wrong address, network); retryable."""

    retryable = True


def _label(kind: str) -> LiteralString:
    label = LABELS.get(kind)
    if label is None:
        raise ValueError(f"kind: unknown node kind {kind!r}")
    return label


def _rel_type(rel: str) -> LiteralString:
    rel_type = REL_TYPES.get(rel)
    if rel_type is None:
        raise ValueError(f"rel: unknown edge kind {rel!r}")
    return rel_type


def _merge_query(rel: str) -> LiteralString:
    """The batched upsert for one edge kind."""
    rel_type = _rel_type(rel)
    target = _label(REL_TARGET[rel])
    text: LiteralString = (
        "UNWIND $rows AS r "
        "MERGE (a:Account {id: r[0]}) "
        "MERGE (b:" + target + " {id: r[1]}) "
        "MERGE (a)-[e:" + rel_type + "]->(b) "
        "ON CREATE SET e.first_seen = r[2], e.last_seen = r[3], e.times = r[4], "
        "e.failures = r[5], e.amount = reduce(s = 0.0, x IN r[6] | s + x) "
        "ON MATCH SET "
        "e.first_seen = CASE WHEN r[2] < e.first_seen THEN r[2] ELSE e.first_seen END, "
        "e.last_seen = CASE WHEN r[3] > e.last_seen THEN r[3] ELSE e.last_seen END, "
        "e.times = e.times + r[4], e.failures = e.failures + r[5], "
        "e.amount = reduce(s = e.amount, x IN r[6] | s + x)"
    )
    return text


_MERGE: Final = {rel: _merge_query(rel) for rel in REL_TYPES}


class Neo4jGraphStore(GraphStore):
    """The entity graph in a Neo4j 5 database, over Bolt.

    Args:
        uri: the server, e.g. ``bolt://127.0.0.1:7687`` (``neo4j://`` for a cluster).
        database: the database name.
        auth: the driver's ``auth`` (``None`` when the server has auth disabled, else e.g.
            ``("neo4j", password)``).
        batch_size: aggregated edge rows per write transaction.

    Raises:
        GraphStoreUnavailable: the server cannot be reached.

    The unique-id constraints are created (if missing) when the store opens.
    """

    def __init__(
        self,
        uri: str,
        *,
        database: str = "neo4j",
        auth: Any = None,
        batch_size: int = 5000,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        self.uri = uri
        self.database = database
        self.batch_size = batch_size
        self._driver: Driver = GraphDatabase.driver(uri, auth=auth)
        try:
            with self._unavailable():
                self._driver.verify_connectivity()
                self._create_constraints()
        except BaseException:
            self._driver.close()
            raise

    def __repr__(self) -> str:
        return f"Neo4jGraphStore({self.uri!r}, database={self.database!r})"

    # -- Neo4j-only operations -----------------------------------------------------------------

    def constraints(self) -> dict[str, str]:
        """The unique-id constraints in place: ``{label: constraint name}``."""
        records = self._read(
            lambda tx: tx.run(
                "SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties "
                "WHERE type = 'UNIQUENESS' AND properties = ['id'] "
                "RETURN labelsOrTypes[0] AS label, name"
            ).data()
        )
        return {r["label"]: r["name"] for r in records if r["label"] in KINDS}

    def checkpoint(self, stream: str) -> int:
        """The bus offset the graph reflects for the follower ``stream`` (0 when none)."""
        record = self._read(
            lambda tx: tx.run(
                "MATCH (c:" + _CHECKPOINT + " {stream: $stream}) RETURN c.offset AS offset",
                stream=stream,
            ).single()
        )
        return 0 if record is None else int(record["offset"])

    def upsert_through(
        self, updates: Iterable[EdgeUpdate], *, stream: str, expected: int, offset: int
    ) -> int:
        """Apply ``updates`` and move ``stream``'s checkpoint to ``offset``, in one transaction.

        The checkpoint must still be at ``expected`` (else :class:`CheckpointConflict`, and
        nothing is applied): a batch is applied exactly once, even across crashes and retries.
        Returns the number of updates.
        """
        batch = list(updates)
        rows = _aggregate(batch)  # checks every rel and kind before anything is sent
        by_rel: dict[str, list[_Row]] = {}
        for rel, row in rows:
            by_rel.setdefault(rel, []).append(row)

        def work(tx: ManagedTransaction) -> None:
            moved = tx.run(
                "MERGE (c:" + _CHECKPOINT + " {stream: $stream}) "
                "ON CREATE SET c.offset = 0 "
                "WITH c WHERE c.offset = $expected SET c.offset = $offset RETURN c.offset AS o",
                stream=stream,
                expected=expected,
                offset=offset,
            ).single()
            if moved is None:
                raise CheckpointConflict(
                    f"graph checkpoint {stream!r} is not at {expected}: another writer moved it"
                )
            _apply(tx, by_rel)

        self._write(work)
        return len(batch)

    def clear(self) -> None:
        """Delete every node and relationship (constraints stay). For tests."""
        with self._unavailable(), self._driver.session(database=self.database) as session:
            # relationships first: detaching a hub with 100k edges in one batch of nodes would
            # exceed the transaction memory pool
            session.run(
                "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 20000 ROWS"
            ).consume()
            session.run("MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 20000 ROWS").consume()

    def close(self) -> None:
        """Close the driver and its connections."""
        self._driver.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _unavailable(self) -> _Translate:
        return _Translate(self.uri, self.database)

    def _read(self, work: Any) -> Any:
        with self._unavailable(), self._driver.session(database=self.database) as session:
            return session.execute_read(work)

    def _write(self, work: Any) -> Any:
        with self._unavailable(), self._driver.session(database=self.database) as session:
            return session.execute_write(work)

    def _create_constraints(self) -> None:
        with self._driver.session(database=self.database) as session:
            for kind, label in LABELS.items():
                name: LiteralString = "ringfence_" + kind + "_id"
                session.run(
                    "CREATE CONSTRAINT " + name + " IF NOT EXISTS "
                    "FOR (n:" + label + ") REQUIRE n.id IS UNIQUE"
                ).consume()
            session.run(
                "CREATE CONSTRAINT ringfence_checkpoint_stream IF NOT EXISTS "
                "FOR (c:" + _CHECKPOINT + ") REQUIRE c.stream IS UNIQUE"
            ).consume()
            session.run("CALL db.awaitIndexes(300)").consume()

    # -- hooks -------------------------------------------------------------------------------

    def _upsert(self, updates: list[EdgeUpdate]) -> None:
        rows = _aggregate(updates)  # checks every rel and kind before anything is sent
        for start in range(0, len(rows), self.batch_size):
            by_rel: dict[str, list[_Row]] = {}
            for rel, row in rows[start : start + self.batch_size]:
                by_rel.setdefault(rel, []).append(row)
            self._write(lambda tx, by_rel=by_rel: _apply(tx, by_rel))

    def _adjacent(self, node: Node, since: float | None, until: float | None) -> list[Edge]:
        label = _label(node.kind)
        query: LiteralString = (
            "MATCH (n:" + label + " {id: $id})-[r]-(m) WHERE " + _BOUNDS + " RETURN " + _EDGE_FIELDS
        )
        rows = self._read(lambda tx: tx.run(query, id=node.id, since=since, until=until).values())
        return list(_edges(node, rows).values())

    def _subgraph(
        self, seeds: list[Node], hops: int, fanout: int, since: float | None, until: float | None
    ) -> Subgraph:
        return cast(Subgraph, self._read(lambda tx: _walk(tx, seeds, hops, fanout, since, until)))

    def _degree(self, node: Node, rel: str | None) -> int:
        label = _label(node.kind)
        pattern: LiteralString = "(n)-[]-()" if rel is None else "(n)-[:" + _rel_type(rel) + "]-()"
        query: LiteralString = (
            "MATCH (n:" + label + " {id: $id}) RETURN COUNT { " + pattern + " } AS degree"
        )
        record = self._read(lambda tx: tx.run(query, id=node.id).single())
        return 0 if record is None else int(record["degree"])

    def _has_node(self, node: Node) -> bool:
        label = _label(node.kind)
        query: LiteralString = "MATCH (n:" + label + " {id: $id}) RETURN count(n) AS n"
        record = self._read(lambda tx: tx.run(query, id=node.id).single())
        return record is not None and record["n"] > 0

    def _counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> dict[str, int]:
            nodes = tx.run("MATCH (n) WHERE NOT n:" + _CHECKPOINT + " RETURN count(n) AS c").single(
                strict=True
            )["c"]
            edges = tx.run("MATCH ()-[r]->() RETURN count(r) AS c").single(strict=True)["c"]
            return {"nodes": int(nodes), "edges": int(edges)}

        return cast(dict[str, int], self._read(work))

    def _delete_node(self, node: Node) -> int:
        record = self._write(lambda tx: tx.run(_DELETE[node.kind], id=node.id).single())
        return 0 if record is None else int(record["removed"])


class _Translate:
    """Turns the driver's connection failures into :class:`GraphStoreUnavailable`."""

    def __init__(self, uri: str, database: str) -> None:
        self.uri = uri
        self.database = database

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, ServiceUnavailable | SessionExpired):
            raise GraphStoreUnavailable(
                f"Neo4j at {self.uri} (database {self.database!r}) cannot be reached: {exc}. "
                "Is the server running? For a local one: `make neo4j`."
            ) from exc


def _aggregate(updates: Iterable[EdgeUpdate]) -> list[tuple[str, _Row]]:
    """One ``(rel, row)`` per edge, in first-seen order within the batch.

    A row is what the merge query reads: ``[src, dst, first_seen, last_seen, times, failures,
    amounts]``, the amounts being the non-zero ones, in order.
    """
    agg: dict[tuple[str, str, str], _Row] = {}
    out: list[tuple[str, _Row]] = []
    for rel, src, kind, dst, ts, amount, failed in updates:
        if REL_TARGET.get(rel) != kind or rel not in REL_TYPES:
            raise ValueError(f"rel: {rel!r} cannot point to a {kind!r} node")
        ts = float(ts)
        key = (rel, src, dst)
        row = agg.get(key)
        if row is None:
            row = [src, dst, ts, ts, 1, 1 if failed else 0, [float(amount)] if amount else []]
            agg[key] = row
            out.append((rel, row))
            continue
        if ts < row[2]:
            row[2] = ts
        elif ts > row[3]:
            row[3] = ts
        row[4] += 1
        if failed:
            row[5] += 1
        if amount:
            row[6].append(float(amount))
    return out


def _apply(tx: ManagedTransaction, by_rel: dict[str, list[_Row]]) -> None:
    for rel, rows in by_rel.items():
        tx.run(_MERGE[rel], rows=rows).consume()


def _edges(node: Node, rows: Iterable[list[Any]]) -> dict[tuple[str, str, str, str], Edge]:
    """Edges touching ``node`` from query rows, keyed (and so de-duplicated) by identity."""
    out: dict[tuple[str, str, str, str], Edge] = {}
    for rel, outgoing, label, other_id, first, last, times, failures, amount in rows:
        other = Node(KINDS[label], other_id)
        src, dst = (node, other) if outgoing else (other, node)
        out[(rel, src.id, dst.kind, dst.id)] = Edge(
            rel, src, dst, float(first), float(last), int(times), int(failures), float(amount)
        )
    return out


def _ids_by_kind(nodes: Iterable[Node]) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {kind: [] for kind in LABELS}
    for node in nodes:
        ids[node.kind].append(node.id)
    return ids


def _ranking(node: Node, edge: Edge) -> tuple[float, str, str, str, tuple[str, ...]]:
    """The order of :mod:`graph.store`'s walk: most recent, other end, rel, then edge order."""
    other = edge.dst if edge.src == node else edge.src
    return (-edge.last_seen, other.kind, other.id, edge.rel, edge_sort_key(edge))


def _walk(
    tx: ManagedTransaction,
    seeds: list[Node],
    hops: int,
    fanout: int,
    since: float | None,
    until: float | None,
) -> Subgraph:
    present: LiteralString = (
        "CALL () { " + _FRONTIER + " } RETURN labels(n)[0] AS label, n.id AS id"
    )
    seen = {Node(KINDS[label], i) for label, i in tx.run(present, ids=_ids_by_kind(seeds)).values()}
    frontier = list(seen)
    edges: dict[tuple[str, str, str, str], Edge] = {}
    top: LiteralString = (
        "CALL () { " + _FRONTIER + " } "
        "CALL (n) { MATCH (n)-[r]-(m) WHERE " + _BOUNDS + " "
        "RETURN r, m ORDER BY r.last_seen DESC LIMIT $k } "
        "RETURN labels(n)[0] AS node_label, n.id AS node_id, " + _EDGE_FIELDS
    )
    for _ in range(hops):
        if not frontier:
            break
        rows: dict[Node, list[list[Any]]] = {}
        result = tx.run(top, ids=_ids_by_kind(frontier), k=fanout + 1, since=since, until=until)
        for row in result.values():
            rows.setdefault(Node(KINDS[row[0]], row[1]), []).append(row[2:])
        nxt: list[Node] = []
        for node, node_rows in rows.items():
            for edge in _top_edges(tx, node, node_rows, fanout, since, until):
                edges[(edge.rel, edge.src.id, edge.dst.kind, edge.dst.id)] = edge
                other = edge.dst if edge.src == node else edge.src
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
        frontier = nxt
    return Subgraph(sorted(seen), sorted(edges.values(), key=edge_sort_key))


def _top_edges(
    tx: ManagedTransaction,
    node: Node,
    rows: list[list[Any]],
    fanout: int,
    since: float | None,
    until: float | None,
) -> Iterator[Edge]:
    """The first ``fanout`` edges of ``node`` in walk order, from its ``fanout + 1`` latest."""
    found = _edges(node, rows)
    if len(rows) > fanout:
        # Rows hold every edge later than the last row's time, but maybe not all edges tied
        # with it: fetch those when the cut falls among them.
        cut = min(e.last_seen for e in found.values())
        later = sum(1 for e in found.values() if e.last_seen > cut)
        if later < fanout:
            label = _label(node.kind)
            query: LiteralString = (
                "MATCH (n:" + label + " {id: $id})-[r]-(m) "
                "WHERE r.last_seen = $cut AND " + _BOUNDS + " RETURN " + _EDGE_FIELDS
            )
            tied = tx.run(query, id=node.id, cut=cut, since=since, until=until).values()
            found.update(_edges(node, tied))
    ranked = sorted(found.values(), key=lambda e: _ranking(node, e))
    yield from ranked[:fanout]
