"""The ``GraphStore`` interface: one contract, several backends.

Public methods validate their arguments and define the semantics once; a backend implements only
the private hooks (``_upsert``, ``_adjacent``, ...). Backends: :mod:`graph.embedded` (in memory,
snapshots to disk; the default) and :mod:`graph.neo4j_store` (Neo4j over Bolt). One contract test
suite (``tests/graph/test_store_contract.py``) runs against every backend and proves they return
the same answers on the same events.

Traversal is undirected (an identifier's neighbours are the accounts that use it). Where a node
has more neighbours than ``fanout``, the most recently seen edges win, ties broken by the
neighbour's kind and id, so every backend picks the same ones. Time bounds keep an edge whose
``[first_seen, last_seen]`` overlaps ``[since, until]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple

import numpy as np

from graph.model import NODE_KINDS, REL_TARGET, EdgeUpdate, Node, edges_from_event


class Edge(NamedTuple):
    """An aggregated edge ``account -rel-> dst``.

    Seen ``times`` times, ``failures`` of them failed, ``amount`` summed (money edges), between
    ``first_seen`` and ``last_seen`` (epoch seconds).
    """

    rel: str
    src: Node
    dst: Node
    first_seen: float
    last_seen: float
    times: int
    failures: int
    amount: float


RELS: Final = tuple(REL_TARGET)
"""Edge kinds in a fixed order: :attr:`SubgraphColumns.rel` holds indexes into it."""


class SubgraphColumns(NamedTuple):
    """A subgraph as arrays, the form a model reads (``edge_index`` is ``[src, dst]``).

    ``nodes`` is in no particular order; ``src`` and ``dst`` index into it, ``rel`` into
    :data:`RELS`; the other columns are one value per edge, in the same edge order.
    """

    nodes: list[Node]
    rel: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    first_seen: np.ndarray
    last_seen: np.ndarray
    times: np.ndarray
    failures: np.ndarray
    amount: np.ndarray


class Subgraph:
    """Nodes (sorted) and the edges among them (sorted by rel, src, dst).

    A backend may hand over its answer as columns (:meth:`from_columns`); the sorted
    :attr:`nodes` and :attr:`edges` are then built on first use, so a caller that only needs
    the arrays (:attr:`columns`, e.g. to score the subgraph) pays nothing for Python objects.
    Two subgraphs are equal when their nodes and edges are.
    """

    __slots__ = ("_columns", "_edges", "_nodes")

    def __init__(self, nodes: Sequence[Node], edges: Sequence[Edge]) -> None:
        self._nodes: list[Node] | None = list(nodes)
        self._edges: list[Edge] | None = list(edges)
        self._columns: SubgraphColumns | None = None

    @classmethod
    def from_columns(cls, columns: SubgraphColumns) -> Subgraph:
        """A subgraph whose nodes and edges are built from ``columns`` when first read."""
        sg = cls.__new__(cls)
        sg._nodes = sg._edges = None
        sg._columns = columns
        return sg

    @property
    def nodes(self) -> list[Node]:
        """The nodes, sorted by kind and id."""
        if self._nodes is None:
            assert self._columns is not None
            self._nodes = sorted(self._columns.nodes)
        return self._nodes

    @property
    def edges(self) -> list[Edge]:
        """The edges, sorted by rel, source and target."""
        if self._edges is None:
            c = self._columns
            assert c is not None
            nodes = c.nodes
            new = tuple.__new__
            edges = [
                new(Edge, (RELS[r], nodes[s], nodes[d], f, last, t, x, a))
                for r, s, d, f, last, t, x, a in zip(
                    c.rel.tolist(),
                    c.src.tolist(),
                    c.dst.tolist(),
                    c.first_seen.tolist(),
                    c.last_seen.tolist(),
                    c.times.tolist(),
                    c.failures.tolist(),
                    c.amount.tolist(),
                    strict=True,
                )
            ]
            # distinct edges differ in (rel, src, dst), so their natural order is edge_sort_key's
            edges.sort()
            self._edges = edges
        return self._edges

    @property
    def columns(self) -> SubgraphColumns:
        """The subgraph as arrays (built from the edges when the backend gave objects)."""
        if self._columns is None:
            nodes = self.nodes
            edges = self.edges
            index = {n: i for i, n in enumerate(nodes)}
            rel_index = {r: i for i, r in enumerate(RELS)}
            self._columns = SubgraphColumns(
                nodes,
                np.array([rel_index[e.rel] for e in edges], dtype=np.uint8),
                np.array([index[e.src] for e in edges], dtype=np.int64),
                np.array([index[e.dst] for e in edges], dtype=np.int64),
                np.array([e.first_seen for e in edges], dtype=np.float64),
                np.array([e.last_seen for e in edges], dtype=np.float64),
                np.array([e.times for e in edges], dtype=np.int64),
                np.array([e.failures for e in edges], dtype=np.int64),
                np.array([e.amount for e in edges], dtype=np.float64),
            )
        return self._columns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Subgraph):
            return NotImplemented
        return self.nodes == other.nodes and self.edges == other.edges

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Subgraph(nodes={self.nodes!r}, edges={self.edges!r})"


def edge_sort_key(edge: Edge) -> tuple[str, str, str, str, str]:
    """The order edges are listed in."""
    return (edge.rel, edge.src.kind, edge.src.id, edge.dst.kind, edge.dst.id)


def _check_node(node: Node) -> Node:
    if not isinstance(node, tuple) or len(node) != 2 or node[0] not in NODE_KINDS:
        raise ValueError(f"node: expected (kind, id) with kind in {NODE_KINDS}, got {node!r}")
    if not isinstance(node[1], str) or not node[1]:
        raise ValueError(f"node: id must be a non-empty string, got {node[1]!r}")
    return Node(*node)


def _check_bounds(hops: int, fanout: int, since: float | None, until: float | None) -> None:
    if not 0 <= hops <= 4:
        raise ValueError(f"hops: must be between 0 and 4, got {hops}")
    if fanout < 1:
        raise ValueError(f"fanout: must be at least 1, got {fanout}")
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since}) is after until ({until})")


class GraphStore(ABC):
    """The entity graph. Subclasses implement the ``_`` hooks only."""

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, updates: Iterable[EdgeUpdate]) -> int:
        """Apply edge observations (creating nodes and edges as needed); returns how many."""
        batch = list(updates)
        for u in batch:
            if REL_TARGET.get(u.rel) != u.dst_kind:
                raise ValueError(f"rel: {u.rel!r} cannot point to a {u.dst_kind!r} node")
        if batch:
            self._upsert(batch)
        return len(batch)

    def upsert_events(self, events: Iterable[Any]) -> int:
        """Apply the edges of canonical events (see :func:`graph.model.edges_from_event`)."""
        return self.upsert(u for e in events for u in edges_from_event(e))

    def delete_personal_data(self, entity: Node | str) -> int:
        """Erase an entity (a node, or an account by id): the node and every edge it has.

        Erasing an account also removes the identifiers (devices, IPs, cards, e-mails, phones,
        addresses) it leaves with no edge; merchants and other accounts stay. Erasing an
        identifier (an e-mail address, a phone number) leaves the accounts that used it.
        Returns the number of edges removed (0 for an entity not in the graph).
        """
        node = _check_node(Node("account", entity) if isinstance(entity, str) else entity)
        return self._delete_node(node)

    # -- reads -------------------------------------------------------------------------------

    def edges(
        self,
        node: Node,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Edge]:
        """Every edge touching ``node`` (either end), within the time bounds, sorted."""
        node = _check_node(node)
        _check_bounds(0, 1, since, until)
        return sorted(self._adjacent(node, since, until), key=edge_sort_key)

    def neighbours(
        self,
        node: Node,
        *,
        hops: int = 1,
        fanout: int = 50,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Node]:
        """Nodes within ``hops`` of ``node`` (not itself), capped per node by ``fanout``."""
        return [
            n
            for n in self.subgraph([node], hops=hops, fanout=fanout, since=since, until=until).nodes
            if n != node
        ]

    def subgraph(
        self,
        nodes: Sequence[Node],
        *,
        hops: int = 2,
        fanout: int = 50,
        since: float | None = None,
        until: float | None = None,
    ) -> Subgraph:
        """The nodes within ``hops`` of any seed and the edges among them.

        A breadth-first expansion: from each node reached, at most ``fanout`` of its edges are
        followed (most recent first). Returned edges are those followed.
        """
        seeds = [_check_node(n) for n in nodes]
        _check_bounds(hops, fanout, since, until)
        return self._subgraph(seeds, hops, fanout, since, until)

    def degree(self, node: Node, *, rel: str | None = None) -> int:
        """How many edges touch ``node`` (of kind ``rel`` if given)."""
        node = _check_node(node)
        if rel is not None and rel not in REL_TARGET:
            raise ValueError(f"rel: unknown edge kind {rel!r}")
        return self._degree(node, rel)

    def has_node(self, node: Node) -> bool:
        """Whether ``node`` is in the graph."""
        return self._has_node(_check_node(node))

    def counts(self) -> dict[str, int]:
        """``{"nodes": n, "edges": m}``."""
        return self._counts()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the default subgraph walk, on top of _adjacent -----------------------------------------

    def _subgraph(
        self, seeds: list[Node], hops: int, fanout: int, since: float | None, until: float | None
    ) -> Subgraph:
        seen = {n for n in seeds if self._has_node(n)}
        frontier = sorted(seen)
        edges: dict[tuple[str, str, str, str], Edge] = {}
        for _ in range(hops):
            nxt: list[Node] = []
            for node in frontier:
                adjacent = self._adjacent(node, since, until)
                adjacent.sort(key=_recency_of(node))
                for edge in adjacent[:fanout]:
                    edges[(edge.rel, edge.src.id, edge.dst.kind, edge.dst.id)] = edge
                    other = edge.dst if edge.src == node else edge.src
                    if other not in seen:
                        seen.add(other)
                        nxt.append(other)
            frontier = sorted(nxt)
        return Subgraph(sorted(seen), sorted(edges.values(), key=edge_sort_key))

    # -- hooks ---------------------------------------------------------------------------------

    @abstractmethod
    def _upsert(self, updates: list[EdgeUpdate]) -> None: ...

    @abstractmethod
    def _adjacent(self, node: Node, since: float | None, until: float | None) -> list[Edge]:
        """Every edge touching ``node`` within the bounds, in any order (a new list)."""

    @abstractmethod
    def _degree(self, node: Node, rel: str | None) -> int: ...

    @abstractmethod
    def _has_node(self, node: Node) -> bool: ...

    @abstractmethod
    def _counts(self) -> dict[str, int]: ...

    @abstractmethod
    def _delete_node(self, node: Node) -> int: ...


def _recency_of(node: Node) -> Callable[[Edge], tuple[float, str, str, str]]:
    """Sort key from ``node``: most recent first, then the other end's kind and id, then rel."""

    def key(edge: Edge) -> tuple[float, str, str, str]:
        other = edge.dst if edge.src == node else edge.src
        return (-edge.last_seen, other.kind, other.id, edge.rel)

    return key
