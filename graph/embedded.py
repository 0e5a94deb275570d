"""The embedded graph store: in memory, snapshots to disk. The default backend.

Representation. Nodes and edges are numbered and everything about them lives in columns
(:class:`array.array`, one machine value per node or edge), so a graph of millions of edges is a
few objects per node to the garbage collector rather than several per edge (a full collection
stays short), and takes about 360 bytes per edge all told (5 million edges and 2.8 million
nodes in 1.8 GiB, ``perf/graph_bench.py``)::

    edge e:  -last_seen  first_seen  times  failures  amount  rel  source  target
    node n:  Node(kind, id)  outgoing side  incoming side   (a side: an array of edge numbers)

A dict maps ``(rel, source id, target id)`` to the edge's number (the target's kind follows from
``rel``) and one dict per kind maps an id to the node's number; an id string is stored once and
every later mention of it resolves through these dicts.

Recency order, kept lazily. A side is sorted by ``-last_seen`` as of its last *fold*. An update
that makes an edge more recent, or a new edge, moves nothing: it flags the edge pending on its
two sides. A side of up to 16 edges is then simply re-sorted by the next read that needs it. A
longer side also appends the edge to a pending list, and a read merges the sorted side (skipping
pending edges, whose place there is stale) with the pending list (sorted on demand and kept so
until the next write). The side folds (a stable NumPy argsort of its recency column) when the
pending list passes a quarter of its length on write, or a sixteenth on read. So a hub with
100,000 edges is re-sorted once every few thousand updates and never per query, and the
fan-out-capped walk reads ``O(fanout)`` edges of a node whatever its degree. Edges last seen at
the same time are put in the full traversal order of :mod:`graph.store` (the other end's kind
and id, rel, then source id) only where it matters: among those tied at the fan-out cut.

A self-loop (an account paying itself) sits on its node's outgoing side only: it is one edge.
Erasing an account leaves holes in the numbering, reused by later nodes and edges.

Snapshots are one file: a magic line, a format version line, then msgpack holding the columns
as raw little-endian bytes (see :class:`_Snapshot`); written to a temporary file, flushed and
renamed, so a crash leaves the old snapshot or the new one.

>>> from graph.model import EdgeUpdate, Node
>>> g = EmbeddedGraphStore()
>>> g.upsert([EdgeUpdate("USES_DEVICE", "a1", "device", "d1", 10.0),
...           EdgeUpdate("USES_DEVICE", "a2", "device", "d1", 20.0),
...           EdgeUpdate("USES_DEVICE", "a1", "device", "d1", 30.0, failed=True)])
3
>>> [(e.rel, e.dst.id, e.first_seen, e.last_seen, e.times, e.failures)
...  for e in g.edges(Node("account", "a1"))]
[('USES_DEVICE', 'd1', 10.0, 30.0, 2, 1)]
>>> g.neighbours(Node("account", "a2"), hops=2)
[Node(kind='account', id='a1'), Node(kind='device', id='d1')]
"""

from __future__ import annotations

import os
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from graph.model import IDENTIFIER_RELS, NODE_KINDS, REL_TARGET, EdgeUpdate, Node
from graph.store import RELS, Edge, GraphStore, Subgraph, SubgraphColumns

_RELS: Final = RELS
_REL_INDEX: Final = {r: i for i, r in enumerate(_RELS)}
_KINDS: Final = {k: k for k in NODE_KINDS}
_IDENTIFIER_KINDS: Final = frozenset(REL_TARGET[r] for r in IDENTIFIER_RELS)
_DEAD: Final = 255
"""The rel of a deleted edge's number (kept for reuse)."""

_INF: Final = float("inf")
_FOLD_MIN: Final = 64
"""A side's pending list may always hold this many edges before a write folds the side."""
_SMALL: Final = 16
"""A side with at most this many edges has no pending list: a read after a write sorts it."""
_NUMPY_MIN: Final = 64
"""Sides at least this long are sorted by NumPy."""
_OUT, _IN = 0, 1

_tuple_new: Final = tuple.__new__

_MAGIC: Final = b"RFGRAPH\n"
FORMAT_VERSION: Final = 1
"""Version of the snapshot format that :meth:`EmbeddedGraphStore.snapshot` writes."""


class _Snapshot(msgspec.Struct, array_like=True):
    """The body of a snapshot file (msgpack), after an 8-byte magic and a version line.

    Numeric columns are raw little-endian arrays. Nodes and edges keep their numbers (a deleted
    one leaves a hole: kind or rel 255, listed in ``free_nodes`` / ``free_edges``). Each side is
    stored folded: ``out_count[n]`` edge numbers of node n's outgoing side follow each other in
    ``out_edges``, most recent first; likewise ``in_count`` and ``in_edges``.
    """

    kinds: list[str]
    rels: list[str]
    node_kind: bytes
    node_id: list[str]
    free_nodes: list[int]
    neg_last: bytes
    first: bytes
    times: bytes
    failures: bytes
    amount: bytes
    rel: bytes
    src: bytes
    dst: bytes
    loop: bytes
    free_edges: list[int]
    out_count: bytes
    out_edges: bytes
    in_count: bytes
    in_edges: bytes


class EmbeddedGraphStore(GraphStore):
    """The entity graph in memory; :meth:`snapshot` and :meth:`restore` persist it.

    Safe to share between threads: each operation holds the store's lock.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # nodes
        self._node_ids: dict[str, dict[str, int]] = {k: {} for k in NODE_KINDS}
        self._names: list[Node | None] = []
        self._free_nodes: list[int] = []
        # edges, one value per edge number
        self._edge_ids: dict[tuple[str, str, str], int] = {}
        self._nl = array("d")  # -last_seen
        self._first = array("d")
        self._times = array("q")
        self._fails = array("q")
        self._amount = array("d")
        self._rel = array("B")
        self._src = array("i")
        self._dst = array("i")
        self._free_edges: list[int] = []
        # sides: [outgoing, incoming], each indexed by node number
        self._sides: tuple[list[array[int] | None], list[array[int] | None]] = ([], [])
        self._flags = (bytearray(), bytearray())  # per edge: pending on that side
        self._pend: tuple[dict[int, list[int]], dict[int, list[int]]] = ({}, {})
        self._unsorted = (bytearray(), bytearray())  # per node: its side needs sorting

    def __repr__(self) -> str:
        c = self._counts()
        return f"EmbeddedGraphStore(nodes={c['nodes']}, edges={c['edges']})"

    # -- embedded-only operations ----------------------------------------------------------

    def compact(self) -> None:
        """Fold every side's pending updates into place (optional: reads fold as needed).

        After a bulk load this makes the first query on each hub as fast as later ones.
        """
        with self._lock:
            for side in (_OUT, _IN):
                for nid in {*_marked(self._unsorted[side]), *self._pend[side]}:
                    self._fold(side, nid)

    def snapshot(self, path: str | os.PathLike[str]) -> int:
        """Write the whole graph to ``path`` atomically; returns the bytes written.

        The file is written beside ``path`` under a temporary name, flushed to disk, then
        renamed over ``path``, so a crash leaves either the old snapshot or the new one.
        """
        target = Path(path)
        with self._lock:
            self.compact()
            body = msgspec.msgpack.encode(self._columns())
        header = _MAGIC + f"{FORMAT_VERSION}\n".encode()
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(header)
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return len(header) + len(body)

    @classmethod
    def restore(cls, path: str | os.PathLike[str]) -> EmbeddedGraphStore:
        """A store holding the graph that :meth:`snapshot` wrote to ``path``.

        Raises:
            ValueError: the file is not a graph snapshot, is damaged, or was written in another
                format version.
        """
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(_MAGIC):
            raise ValueError(f"{path}: not a graph snapshot")
        end = data.find(b"\n", len(_MAGIC))
        version = data[len(_MAGIC) : end]
        if end < 0 or version != str(FORMAT_VERSION).encode():
            raise ValueError(
                f"{path}: snapshot format version {version[:16]!r}, this store reads "
                f"{FORMAT_VERSION}"
            )
        store = cls()
        try:
            snap = msgspec.msgpack.decode(memoryview(data)[end + 1 :], type=_Snapshot)
            store._load(snap)
        except (msgspec.DecodeError, IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: damaged graph snapshot: {exc}") from exc
        return store

    # -- writes ----------------------------------------------------------------------------

    def _upsert(self, updates: list[EdgeUpdate]) -> None:
        with self._lock:
            get = self._edge_ids.get
            nls, first, times, fails, amounts = (
                self._nl,
                self._first,
                self._times,
                self._fails,
                self._amount,
            )
            srcs, dsts = self._src, self._dst
            out_flags, in_flags = self._flags
            out_unsorted, in_unsorted = self._unsorted
            new, touch = self._new, self._touch
            for rel, src, kind, dst, ts, amount, failed in updates:
                e = get((rel, src, dst))
                if e is None:
                    new(rel, src, kind, dst, ts, amount, failed)
                    continue
                if ts < first[e]:
                    first[e] = ts
                nl = -ts
                if nl < nls[e]:
                    nls[e] = nl
                    # pending already: its side's pending list is no longer in order
                    if out_flags[e]:
                        out_unsorted[srcs[e]] = 1
                    else:
                        out_flags[e] = 1
                        touch(_OUT, srcs[e], e)
                    if in_flags[e]:
                        in_unsorted[dsts[e]] = 1
                    else:
                        in_flags[e] = 1
                        touch(_IN, dsts[e], e)
                times[e] += 1
                if failed:
                    fails[e] += 1
                if amount:
                    amounts[e] += amount

    def _new(
        self, rel: str, src: str, kind: str, dst: str, ts: float, amount: float, failed: bool
    ) -> None:
        ids = self._node_ids
        s = ids["account"].get(src)
        if s is None:
            s = self._add_node("account", src)
        d = ids[kind].get(dst)
        if d is None:
            d = self._add_node(kind, dst)
        r = _REL_INDEX[rel]
        if self._free_edges:
            e = self._reuse(r, s, d, ts, amount, failed)
        else:
            e = len(self._rel)
            self._nl.append(-ts)
            self._first.append(ts)
            self._times.append(1)
            self._fails.append(1 if failed else 0)
            self._amount.append(amount)
            self._rel.append(r)
            self._src.append(s)
            self._dst.append(d)
            self._flags[_OUT].append(0)
            self._flags[_IN].append(0)
        names = self._names
        self._edge_ids[(_RELS[r], names[s].id, names[d].id)] = e  # type: ignore[union-attr]
        # last on each side, out of place: pending there (unless alone) until the side sorts
        for side, nid in ((_OUT, s), (_IN, d)):
            edges = self._sides[side][nid]
            if edges is None:
                self._sides[side][nid] = array("i", (e,))
            else:
                edges.append(e)
                self._flags[side][e] = 1
                if len(edges) <= _SMALL:
                    self._unsorted[side][nid] = 1
                elif len(edges) == _SMALL + 1:
                    self._fold(side, nid)  # no longer small: sorted, with no pending list
                else:
                    self._touch(side, nid, e)
            if s == d:
                self._flags[_IN][e] = 1  # a self-loop lives on the source's side only
                break

    def _reuse(self, r: int, s: int, d: int, ts: float, amount: float, failed: bool) -> int:
        """Take a deleted edge's number for a new edge."""
        e = self._free_edges.pop()
        self._nl[e] = -ts
        self._first[e] = ts
        self._times[e] = 1
        self._fails[e] = 1 if failed else 0
        self._amount[e] = amount
        self._rel[e] = r
        self._src[e] = s
        self._dst[e] = d
        return e

    def _add_node(self, kind: str, node_id: str) -> int:
        name = _tuple_new(Node, (_KINDS[kind], node_id))
        if self._free_nodes:
            nid = self._free_nodes.pop()
            self._names[nid] = name
        else:
            nid = len(self._names)
            self._names.append(name)
            self._sides[_OUT].append(None)
            self._sides[_IN].append(None)
            self._unsorted[_OUT].append(0)
            self._unsorted[_IN].append(0)
        self._node_ids[kind][node_id] = nid
        return nid

    def _touch(self, side: int, nid: int, e: int) -> None:
        """Note that edge ``e`` just became pending on ``nid``'s ``side``."""
        edges = self._sides[side][nid]
        assert edges is not None
        unsorted = self._unsorted[side]
        if len(edges) <= _SMALL:  # a small side is simply re-sorted when next read
            unsorted[nid] = 1
            return
        pend = self._pend[side].get(nid)
        if pend is None:
            self._pend[side][nid] = [e]
            return
        pend.append(e)
        unsorted[nid] = 1
        if len(pend) > _FOLD_MIN and len(pend) > len(edges) >> 2:
            self._fold(side, nid)

    def _fold(self, side: int, nid: int) -> None:
        """Sort ``nid``'s ``side`` by recency and clear its pending edges."""
        pend = self._pend[side].pop(nid, None)
        self._unsorted[side][nid] = 0
        edges = self._sides[side][nid]
        if edges is None:  # an account's only edge is a self-loop: no incoming side
            return
        flags = self._flags[side]
        for e in edges if pend is None else pend:
            flags[e] = 0
        self._sides[side][nid] = _by_recency(edges, self._nl)

    def _delete_node(self, node: Node) -> int:
        # identifiers (devices, IPs, cards, e-mails, phones, addresses) left with no edge go;
        # merchants and other accounts stay even when this node was their only edge
        with self._lock:
            a = self._nid(node)
            if a is None:
                return 0
            touched: set[int] = set()
            removed = 0
            for side, other_side, ends in ((_OUT, _IN, self._dst), (_IN, _OUT, self._src)):
                for e in self._sides[side][a] or ():
                    other = ends[e]
                    if other != a:
                        self._detach(other_side, other, e)
                        touched.add(other)
                    self._drop_edge(e)
                    removed += 1
            self._drop_node(a)
            for nid in touched:
                name = self._names[nid]
                assert name is not None
                if name.kind in _IDENTIFIER_KINDS and not self._sides[_IN][nid]:
                    self._drop_node(nid)
            return removed

    def _detach(self, side: int, nid: int, e: int) -> None:
        edges = self._sides[side][nid]
        assert edges is not None
        edges.remove(e)
        pend = self._pend[side].get(nid)
        if pend is not None and self._flags[side][e]:
            pend.remove(e)
            if not pend:
                del self._pend[side][nid]
                self._unsorted[side][nid] = 0
                pend = None
        self._flags[side][e] = 0
        if pend is not None and len(edges) <= _SMALL:
            self._fold(side, nid)  # small sides have no pending list

    def _drop_edge(self, e: int) -> None:
        names = self._names
        src, dst = names[self._src[e]], names[self._dst[e]]
        assert src is not None
        assert dst is not None
        del self._edge_ids[(_RELS[self._rel[e]], src.id, dst.id)]
        self._rel[e] = _DEAD
        self._flags[_OUT][e] = 0
        self._flags[_IN][e] = 0
        self._free_edges.append(e)

    def _drop_node(self, nid: int) -> None:
        name = self._names[nid]
        assert name is not None
        del self._node_ids[name.kind][name.id]
        self._names[nid] = None
        for side in (_OUT, _IN):
            self._sides[side][nid] = None
            self._pend[side].pop(nid, None)
            self._unsorted[side][nid] = 0
        self._free_nodes.append(nid)

    # -- reads -----------------------------------------------------------------------------

    def _nid(self, node: Node) -> int | None:
        return self._node_ids[node.kind].get(node.id)

    def _edges_of(self, numbers: Iterable[int]) -> list[Edge]:
        names, rels, srcs, dsts = self._names, self._rel, self._src, self._dst
        nls, first, times, fails, amounts = (
            self._nl,
            self._first,
            self._times,
            self._fails,
            self._amount,
        )
        new = tuple.__new__
        return [
            new(
                Edge,
                (
                    _RELS[rels[e]],
                    names[srcs[e]],
                    names[dsts[e]],
                    first[e],
                    -nls[e],
                    times[e],
                    fails[e],
                    amounts[e],
                ),
            )
            for e in numbers
        ]

    def _adjacent(self, node: Node, since: float | None, until: float | None) -> list[Edge]:
        lo = _INF if since is None else -since
        hi = _INF if until is None else until
        with self._lock:
            nid = self._nid(node)
            if nid is None:
                return []
            nls, first = self._nl, self._first
            edges = self._edges_of(
                e
                for e in chain(self._sides[_OUT][nid] or (), self._sides[_IN][nid] or ())
                if nls[e] <= lo and first[e] <= hi
            )
        # in edge order, so that a stable sort by recency breaks full ties by source id
        edges.sort()
        return edges

    def _subgraph(
        self, seeds: list[Node], hops: int, fanout: int, since: float | None, until: float | None
    ) -> Subgraph:
        # the walk of GraphStore._subgraph, on numbers; the frontier's order cannot change the
        # result (a node joins the next frontier if any frontier node reaches it)
        with self._lock:
            srcs, dsts = self._src, self._dst
            seen: set[int] = set()
            for node in seeds:
                nid = self._nid(node)
                if nid is not None:
                    seen.add(nid)
            frontier = list(seen)
            followed: set[int] = set()
            for _ in range(hops):
                reached: set[int] = set()
                for nid in frontier:
                    ranked = self._ranked(nid, fanout, since, until)
                    if ranked:
                        followed.update(ranked)
                        reached.update(map(srcs.__getitem__, ranked))
                        reached.update(map(dsts.__getitem__, ranked))
                reached -= seen
                if not reached:
                    break
                seen |= reached
                frontier = list(reached)
            return Subgraph.from_columns(self._gather(seen, followed))

    def _gather(self, seen: set[int], followed: set[int]) -> SubgraphColumns:
        """Nodes ``seen`` and edges ``followed`` as columns (copies: the store goes on)."""
        nodes = np.fromiter(seen, dtype=np.int64, count=len(seen))
        nodes.sort()
        edges = np.fromiter(followed, dtype=np.int64, count=len(followed))
        names = self._names

        # each view of a column is dropped at once: a column with a live view cannot grow
        def column(values: array[Any], dtype: type[np.generic]) -> np.ndarray:
            return np.frombuffer(values, dtype=dtype)[edges]

        return SubgraphColumns(
            nodes=list(map(names.__getitem__, nodes.tolist())),  # type: ignore[arg-type]
            rel=column(self._rel, np.uint8),
            src=np.searchsorted(nodes, column(self._src, np.int32)),
            dst=np.searchsorted(nodes, column(self._dst, np.int32)),
            first_seen=column(self._first, np.float64),
            last_seen=-column(self._nl, np.float64),
            times=column(self._times, np.int64),
            failures=column(self._fails, np.int64),
            amount=column(self._amount, np.float64),
        )

    def _ranked(self, nid: int, k: int, since: float | None, until: float | None) -> list[int]:
        """The ``k`` edges of node ``nid`` that the walk follows, within the bounds."""
        lo = _INF if since is None else -since
        hi = _INF if until is None else until
        out = self._side_top(_OUT, nid, k, lo, hi)
        inc = self._side_top(_IN, nid, k, lo, hi)
        if inc:
            if out:
                out += inc
                out.sort(key=self._nl.__getitem__)
            else:
                out = inc
        if len(out) <= k:
            return out
        # ``out`` holds every candidate as recent as the k-th, in recency order: keep the more
        # recent ones and pick from those that tie with the k-th by the rest of the key
        nls = self._nl
        t = nls[out[k - 1]]
        i = k - 1
        while i and nls[out[i - 1]] == t:
            i -= 1
        j = k
        while j < len(out) and nls[out[j]] == t:
            j += 1
        if j == k:
            return out[:k]
        tied = out[i:j]
        tied.sort(key=self._tie_key(nid))
        return out[:i] + tied[: k - i]

    def _tie_key(self, nid: int) -> Callable[[int], tuple[Node, str, str]]:
        names, srcs, dsts, rels = self._names, self._src, self._dst, self._rel

        def key(e: int) -> tuple[Node, str, str]:
            s = srcs[e]
            other = dsts[e] if s == nid else s
            src = names[s]
            assert src is not None
            return (names[other], _RELS[rels[e]], src.id)  # type: ignore[return-value]

        return key

    def _side_top(self, side: int, nid: int, k: int, lo: float, hi: float) -> list[int]:
        """The first ``k`` edges of a side in recency order within the bounds, and ties.

        Edges after the k-th that were last seen at the same time come too; ``lo`` is
        ``-since`` and ``hi`` is ``until``.
        """
        edges = self._sides[side][nid]
        if edges is None:
            return []
        unsorted = self._unsorted[side]
        if len(edges) <= _SMALL:
            pend = None
            if unsorted[nid]:
                self._fold(side, nid)
                edges = self._sides[side][nid]
                assert edges is not None
        else:
            pend = self._pend[side].get(nid)
            if pend is not None:
                if len(pend) > len(edges) >> 4:
                    self._fold(side, nid)
                    edges = self._sides[side][nid]
                    assert edges is not None
                    pend = None
                elif unsorted[nid]:
                    pend[:] = _by_recency(array("i", pend), self._nl)
                    unsorted[nid] = 0
        nls = self._nl
        if pend is None and lo == _INF and hi == _INF:
            if len(edges) <= k:
                return edges.tolist()
            top = edges[:k].tolist()
            t = nls[top[-1]]
            n = len(edges)
            while k < n and nls[edges[k]] == t:  # the tie at the cut comes whole
                top.append(edges[k])
                k += 1
            return top
        first = self._first
        out: list[int] = []
        last = 0.0
        stream: Iterable[int] = (
            edges if pend is None else _merged(edges, pend, self._flags[side], nls)
        )
        if lo != _INF or hi != _INF:
            stream = _in_bounds(stream, nls, first, lo, hi)
        for e in stream:
            if len(out) >= k and nls[e] != last:
                break
            out.append(e)
            last = nls[e]
        return out

    def _degree(self, node: Node, rel: str | None) -> int:
        with self._lock:
            nid = self._nid(node)
            if nid is None:
                return 0
            total = 0
            for edges in (self._sides[_OUT][nid], self._sides[_IN][nid]):
                if edges:
                    if rel is None:
                        total += len(edges)
                    else:
                        total += bytes(map(self._rel.__getitem__, edges)).count(_REL_INDEX[rel])
            return total

    def _has_node(self, node: Node) -> bool:
        with self._lock:
            return node.id in self._node_ids[node.kind]

    def _counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "nodes": len(self._names) - len(self._free_nodes),
                "edges": len(self._edge_ids),
            }

    # -- snapshots -------------------------------------------------------------------------

    def _columns(self) -> _Snapshot:
        kind_index = {k: i for i, k in enumerate(NODE_KINDS)}
        names = self._names
        outs, ins = self._sides
        return _Snapshot(
            kinds=list(NODE_KINDS),
            rels=list(_RELS),
            node_kind=bytes(_DEAD if n is None else kind_index[n.kind] for n in names),
            node_id=["" if n is None else n.id for n in names],
            free_nodes=list(self._free_nodes),
            neg_last=_le(self._nl),
            first=_le(self._first),
            times=_le(self._times),
            failures=_le(self._fails),
            amount=_le(self._amount),
            rel=bytes(self._rel),
            src=_le(self._src),
            dst=_le(self._dst),
            loop=bytes(self._flags[_IN]),  # after a fold only self-loops are flagged
            free_edges=list(self._free_edges),
            out_count=_le(array("i", [len(s) if s else 0 for s in outs])),
            out_edges=_le(array("i", chain.from_iterable(s for s in outs if s))),
            in_count=_le(array("i", [len(s) if s else 0 for s in ins])),
            in_edges=_le(array("i", chain.from_iterable(s for s in ins if s))),
        )

    def _load(self, snap: _Snapshot) -> None:
        if list(snap.kinds) != list(NODE_KINDS) or list(snap.rels) != list(_RELS):
            raise ValueError("node or edge kinds differ from this version's")
        n_nodes = len(snap.node_id)
        kinds = [*NODE_KINDS, *([""] * (256 - len(NODE_KINDS)))]
        node_kind = list(map(kinds.__getitem__, snap.node_kind))
        if len(node_kind) != n_nodes:
            raise ValueError("node columns differ in length")
        ids = snap.node_id
        names: list[Node | None] = list(
            map(_tuple_new, repeat(Node), zip(node_kind, ids, strict=True))
        )
        for nid in snap.free_nodes:
            names[nid] = None
        codes = np.frombuffer(snap.node_kind, dtype=np.uint8)
        for code, kind in enumerate(NODE_KINDS):
            numbers = np.flatnonzero(codes == code).tolist()
            self._node_ids[kind] = dict(zip(map(ids.__getitem__, numbers), numbers, strict=True))
        self._names = names
        self._free_nodes = list(snap.free_nodes)
        self._unsorted = (bytearray(n_nodes), bytearray(n_nodes))
        self._nl = _from_le("d", snap.neg_last)
        self._first = _from_le("d", snap.first)
        self._times = _from_le("q", snap.times)
        self._fails = _from_le("q", snap.failures)
        self._amount = _from_le("d", snap.amount)
        self._rel = array("B", snap.rel)
        self._src = _from_le("i", snap.src)
        self._dst = _from_le("i", snap.dst)
        n_edges = len(self._nl)
        columns = (self._first, self._times, self._fails, self._amount, self._rel, self._src)
        if any(len(c) != n_edges for c in (*columns, self._dst, snap.loop)):
            raise ValueError("edge columns differ in length")
        self._free_edges = list(snap.free_edges)
        self._flags = (bytearray(n_edges), bytearray(snap.loop))
        rels = [*_RELS, *([""] * (256 - len(_RELS)))]
        keys = zip(
            map(rels.__getitem__, self._rel),
            map(ids.__getitem__, self._src),
            map(ids.__getitem__, self._dst),
            strict=True,
        )
        self._edge_ids = dict(zip(keys, range(n_edges), strict=True))
        for e in self._free_edges:
            self._edge_ids.pop(("", ids[self._src[e]], ids[self._dst[e]]), None)
        for side, counts, edges in (
            (_OUT, snap.out_count, snap.out_edges),
            (_IN, snap.in_count, snap.in_edges),
        ):
            self._sides[side][:] = _split(_from_le("i", edges), _from_le("i", counts))
            if len(self._sides[side]) != n_nodes:
                raise ValueError("side columns differ in length")


def _in_bounds(
    edges: Any, nls: array[float], first: array[float], lo: float, hi: float
) -> Iterator[int]:
    """The edges (in recency order) that overlap the bounds; stops at the first too old."""
    for e in edges:
        if nls[e] > lo:
            return
        if first[e] <= hi:
            yield e


def _merged(
    edges: array[int], pend: list[int], flags: bytearray, nls: array[float]
) -> Iterator[int]:
    """A side's edges in recency order: the sorted ones not pending, merged with the pending."""
    j, n = 0, len(pend)
    b = pend[0]
    tb = nls[b]
    for a in edges:
        if flags[a]:
            continue
        ta = nls[a]
        while j < n and tb < ta:
            yield b
            j += 1
            if j < n:
                b = pend[j]
                tb = nls[b]
        yield a
    yield from pend[j:]


def _by_recency(edges: array[int], nls: array[float]) -> array[int]:
    """Edge numbers sorted by ``-last_seen`` (stable: ties keep their order)."""
    if len(edges) < _NUMPY_MIN:
        return array("i", sorted(edges, key=nls.__getitem__))
    # the arrays' buffers, viewed in place; the views go before the arrays can grow again
    keys = np.frombuffer(nls, dtype=np.float64)
    numbers = np.frombuffer(edges, dtype=np.int32)
    ordered = numbers[np.argsort(keys[numbers], kind="stable")]
    del keys, numbers
    out = array("i")
    out.frombytes(ordered.tobytes())
    return out


def _marked(flags: bytearray) -> list[int]:
    """The positions of the non-zero bytes."""
    out = []
    i = flags.find(1)
    while i >= 0:
        out.append(i)
        i = flags.find(1, i + 1)
    return out


def _split(edges: array[int], counts: array[int]) -> list[array[int] | None]:
    """Per node, its slice of ``edges`` (``counts[n]`` long), or None where that is 0."""
    sizes = np.frombuffer(counts, dtype=np.int32)
    if int(sizes.sum()) != len(edges) or (sizes < 0).any():
        raise ValueError("side counts do not match the side columns")
    out: list[array[int] | None] = [None] * len(sizes)
    owners = np.flatnonzero(sizes)
    ends = np.cumsum(sizes[owners])
    for nid, start, end in zip(
        owners.tolist(), (ends - sizes[owners]).tolist(), ends.tolist(), strict=True
    ):
        out[nid] = edges[start:end]
    return out


def _le(a: array[Any]) -> bytes:
    """An array's bytes, little-endian."""
    if sys.byteorder == "little":
        return a.tobytes()
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


def _from_le(typecode: str, data: bytes) -> array[Any]:
    a = array(typecode)
    a.frombytes(data)
    if sys.byteorder != "little":
        a.byteswap()
    return a


if (array("i").itemsize, array("q").itemsize, array("d").itemsize) != (4, 8, 8):
    raise ImportError("graph.embedded needs 4-byte C ints and 8-byte long longs and doubles")
