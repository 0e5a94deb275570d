"""Entity state for the model: aggregated (exact, incremental) and as subgraphs.

Three ways to build the model's inputs from the same feature rows (:class:`gnn.features.TxnRow`,
in time order), all giving the same numbers:

- :func:`dense_inputs`: every row of a history at once, vectorised (training, evaluation);
- :class:`OnlineState` (:mod:`gnn.sums`, compiled): one row at a time, keeping per-entity
  running sums and counts of past transactions' features (serving: a new transaction needs only
  its entities' state);
- :class:`HistoryGraph`: the transaction's subgraph (its entities and their past transactions)
  as a :class:`torch_geometric.data.HeteroData` for :meth:`gnn.model.FraudSAGE.forward`
  (explanations, and the test that proves the aggregated paths exact).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch_geometric.data import HeteroData

from gnn.features import ENTITY_FEATURES, ENTITY_KINDS, RELATIONS, TXN_FEATURES, TxnRow
from gnn.model import NEIGHBOUR_SLOTS, TXN, FraudSAGE
from gnn.sums import OnlineState

__all__ = [
    "DenseInputs",
    "HistoryGraph",
    "OnlineState",
    "batch_tensors",
    "dense_inputs",
    "prefix_means",
]

_SLOT_OF: Final = {rel: i for i, (rel, _) in enumerate(RELATIONS)}
_CHUNK: Final = 12
"""Feature columns summed per pass of :func:`prefix_means`."""


@dataclass(slots=True)
class DenseInputs:
    """What :meth:`gnn.model.FraudSAGE.forward_dense` reads, one row per transaction."""

    x: np.ndarray  # [N, F_t] float32
    entity_x: np.ndarray  # [N, S, F_e] float32
    has: np.ndarray  # [N, S] float32
    nb_mean: np.ndarray  # [N, J, F_t] float32
    nb_count: np.ndarray  # [N, J] float32

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: np.ndarray) -> DenseInputs:
        """The rows at ``index``."""
        return DenseInputs(
            self.x[index],
            self.entity_x[index],
            self.has[index],
            self.nb_mean[index],
            self.nb_count[index],
        )

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """As tensors, in ``forward_dense`` argument order."""
        return tuple(
            torch.from_numpy(a)
            for a in (self.x, self.entity_x, self.has, self.nb_mean, self.nb_count)
        )


def _codes(rows: Sequence[TxnRow]) -> np.ndarray:
    """Entity ids as integers per slot (-1 when absent); one code space per entity kind."""
    out = np.full((len(rows), len(RELATIONS)), -1, dtype=np.int64)
    tables: dict[str, dict[str, int]] = {k: {} for k in ENTITY_KINDS}
    for s, (_, kind) in enumerate(RELATIONS):
        table = tables[kind]
        col = out[:, s]
        for i, row in enumerate(rows):
            key = row.entities[s]
            if key is not None:
                code = table.get(key)
                if code is None:
                    code = table[key] = len(table)
                col[i] = code
    return out


def prefix_means(
    x: np.ndarray, source_keys: np.ndarray, query_keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row t, the mean of ``x[u]`` over earlier rows u whose source key is t's query key.

    Returns the means and how many rows each averaged (mean 0 when none; keys < 0 match
    nothing).

    >>> x = np.array([[1.0], [3.0], [5.0], [7.0]])
    >>> m, c = prefix_means(x, np.array([0, 0, 1, 0]), np.array([0, 0, 0, 1]))
    >>> m[:, 0].tolist(), c.tolist()
    ([0.0, 1.0, 2.0, 5.0], [0.0, 1.0, 2.0, 1.0])
    """
    n = len(x)
    src = np.flatnonzero(source_keys >= 0)
    qry = np.flatnonzero(query_keys >= 0)
    keys = np.concatenate([source_keys[src], query_keys[qry]])
    pos = np.concatenate([src, qry])
    kind = np.concatenate([np.ones(len(src), np.int8), np.zeros(len(qry), np.int8)])
    order = np.lexsort((kind, pos, keys))  # a query comes before its own row's source entry
    keys, pos, kind = keys[order], pos[order], kind[order]
    is_src = kind == 1
    q = ~is_src
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))
    before = start[q] - 1  # each query's running totals just before its key's group
    has_before = before >= 0
    before = np.maximum(before, 0)
    counts = np.cumsum(is_src.astype(np.float64))
    cnt = counts[q] - np.where(has_before, counts[before], 0.0)
    rows = pos[q]
    nonzero = cnt > 0
    mean = np.zeros((n, x.shape[1]), dtype=np.float32)
    count = np.zeros(n, dtype=np.float32)
    count[rows] = cnt
    src_rows = pos[is_src]
    for c in range(0, x.shape[1], _CHUNK):  # a few columns at a time: memory stays small
        width = min(_CHUNK, x.shape[1] - c)
        vals = np.zeros((len(order), width), dtype=np.float64)
        vals[is_src] = x[src_rows, c : c + width]
        sums = np.cumsum(vals, axis=0)
        total = sums[q] - np.where(has_before[:, None], sums[before], 0.0)
        mean[rows[nonzero], c : c + width] = total[nonzero] / cnt[nonzero, None]
    return mean, count


def dense_inputs(rows: Sequence[TxnRow]) -> DenseInputs:
    """The model's aggregated inputs for every row of a history (rows in time order)."""
    n = len(rows)
    x = np.stack([r.x for r in rows]) if n else np.zeros((0, len(TXN_FEATURES)), np.float32)
    entity_x = (
        np.stack([r.entity_x for r in rows])
        if n
        else np.zeros((0, len(RELATIONS), len(ENTITY_FEATURES)), np.float32)
    )
    codes = _codes(rows)
    has = (codes >= 0).astype(np.float32)
    nb_mean = np.zeros((n, len(NEIGHBOUR_SLOTS), x.shape[1]), dtype=np.float32)
    nb_count = np.zeros((n, len(NEIGHBOUR_SLOTS)), dtype=np.float32)
    x64 = x.astype(np.float64)
    for j, (slot, rel2) in enumerate(NEIGHBOUR_SLOTS):
        nb_mean[:, j], nb_count[:, j] = prefix_means(x64, codes[:, _SLOT_OF[rel2]], codes[:, slot])
    return DenseInputs(x, entity_x, has, nb_mean, nb_count)


def batch_tensors(
    rows: Sequence[TxnRow], nbs: tuple[np.ndarray, np.ndarray]
) -> tuple[torch.Tensor, ...]:
    """``forward_dense``'s arguments for rows (at least one) and their :meth:`OnlineState.fold`.

    Concatenated and reshaped rather than ``np.stack`` ed: the same arrays, a quarter of the
    time (``stack`` makes a view of every row first).
    """
    n, slots = len(rows), len(RELATIONS)
    has = [e is not None for r in rows for e in r.entities]
    return (
        torch.from_numpy(np.concatenate([r.x for r in rows]).reshape(n, -1)),
        torch.from_numpy(np.concatenate([r.entity_x for r in rows]).reshape(n, slots, -1)),
        torch.from_numpy(np.array(has, dtype=np.float32).reshape(n, slots)),
        torch.from_numpy(nbs[0]),
        torch.from_numpy(nbs[1]),
    )


class HistoryGraph:
    """Feature rows in time order, indexed so that any row's subgraph can be built."""

    def __init__(self, rows: Sequence[TxnRow] = ()) -> None:
        self.rows: list[TxnRow] = []
        self.position: dict[str, int] = {}
        self._index: dict[str, dict[str, list[int]]] = {rel: {} for rel, _ in RELATIONS}
        self._slots = tuple(self._index[rel] for rel, _ in RELATIONS)  # in entity-slot order
        for row in rows:
            self.append(row)

    def append(self, row: TxnRow) -> None:
        """Add the next row (rows come in time order, as the scoring pipeline sees them)."""
        i = len(self.rows)
        self.rows.append(row)
        self.position[row.txn_id] = i
        for key, index in zip(row.entities, self._slots, strict=True):
            if key is not None:
                got = index.get(key)
                if got is None:
                    index[key] = [i]
                else:
                    got.append(i)

    def past(self, rel: str, key: str, before: int) -> list[int]:
        """Positions of the rows linked to entity ``key`` through ``rel``, before ``before``."""
        got = self._index[rel].get(key, [])
        return got[: bisect.bisect_left(got, before)]

    def dense_at(self, position: int) -> DenseInputs:
        """The aggregated inputs of the row at ``position`` (one row), from its history."""
        row = self.rows[position]
        mean = np.zeros((1, len(NEIGHBOUR_SLOTS), len(row.x)), dtype=np.float32)
        count = np.zeros((1, len(NEIGHBOUR_SLOTS)), dtype=np.float32)
        for j, (slot, rel2) in enumerate(NEIGHBOUR_SLOTS):
            key = row.entities[slot]
            if key is not None:
                past = self.past(rel2, key, position)
                if past:
                    xs = np.stack([self.rows[u].x for u in past]).astype(np.float64)
                    mean[0, j] = xs.mean(axis=0)
                    count[0, j] = len(past)
        has = np.array([[e is not None for e in row.entities]], dtype=np.float32)
        return DenseInputs(row.x[None], row.entity_x[None], has, mean, count)

    def subgraph(self, positions: Sequence[int]) -> HeteroData:
        """The subgraph of the rows at ``positions`` (targets), with their entities' history.

        Each target gets its own entity nodes (an entity's state differs with the time of the
        transaction looking at it); past transactions are shared nodes. Node attributes
        ``txn_id`` / ``entity`` name what each node is (for explanations).
        """
        rows = self.rows
        txn_nodes: dict[int, int] = {}
        txn_pos: list[int] = []

        def txn_node(p: int) -> int:
            got = txn_nodes.get(p)
            if got is None:
                got = txn_nodes[p] = len(txn_pos)
                txn_pos.append(p)
            return got

        targets = [txn_node(p) for p in positions]
        ent_x: dict[str, list[np.ndarray]] = {k: [] for k in ENTITY_KINDS}
        ent_name: dict[str, list[str]] = {k: [] for k in ENTITY_KINDS}
        edges: dict[tuple[str, str, str], list[tuple[int, int]]] = {
            et: [] for et in FraudSAGE.edge_types()
        }
        for p, t in zip(positions, targets, strict=True):
            row = rows[p]
            made: dict[tuple[str, str], int] = {}
            for slot, (rel, kind) in enumerate(RELATIONS):
                key = row.entities[slot]
                if key is None:
                    continue
                node = made.get((kind, key))
                if node is None:
                    node = made[(kind, key)] = len(ent_x[kind])
                    ent_x[kind].append(row.entity_x[slot])
                    ent_name[kind].append(key)
                    for rel2, kind2 in RELATIONS:
                        if kind2 == kind:
                            for u in self.past(rel2, key, p):
                                edges[(TXN, rel2, kind)].append((txn_node(u), node))
                edges[(kind, f"rev_{rel}", TXN)].append((node, t))
        data = HeteroData()
        data[TXN].x = torch.from_numpy(np.stack([rows[p].x for p in txn_pos]))
        data[TXN].target = torch.tensor(targets, dtype=torch.long)
        data[TXN].txn_id = [rows[p].txn_id for p in txn_pos]
        for kind in ENTITY_KINDS:
            xs = ent_x[kind]
            data[kind].x = (
                torch.from_numpy(np.stack(xs))
                if xs
                else torch.zeros((0, len(ENTITY_FEATURES)), dtype=torch.float32)
            )
            data[kind].entity = ent_name[kind]
        for et, pairs in edges.items():
            index = torch.tensor(pairs, dtype=torch.long).t() if pairs else None
            data[et].edge_index = (
                index.contiguous() if index is not None else torch.zeros((2, 0), dtype=torch.long)
            )
        return data
