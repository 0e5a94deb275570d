"""Running sums of past transactions' features per entity: the model's aggregated inputs, online.

:class:`OnlineState` keeps, per relation (``by``, ``to``, ``with``, ``on``, ``from``, ``at``)
and entity, the sum (float64) and count of the feature rows of the transactions that reached
the entity through it. A new transaction's neighbour inputs are those sums divided by the
counts, read before the transaction is added. Feeding a history row by row gives exactly
:func:`gnn.online.dense_inputs` of that history (``tests/gnn/test_model.py``).

``make native`` compiles this module with Cython (as it does ``gnn/features.py``): each
relation's sums are rows of one float64 matrix, and a batch is read and added in C loops. Run
as plain Python, the same arithmetic is done with numpy one entity at a time; both give the
same bits (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import cython
import numpy as np

from gnn.features import RELATIONS, TXN_FEATURES, TxnRow
from gnn.model import NEIGHBOUR_SLOTS
from gnn.native import warn_if_stale

_F: Final = len(TXN_FEATURES)
_J: Final = len(NEIGHBOUR_SLOTS)
_REL_INDEX: Final = {rel: i for i, (rel, _) in enumerate(RELATIONS)}
_READ_SLOTS: Final = tuple(slot for slot, _ in NEIGHBOUR_SLOTS)
_READ_TABLES: Final = tuple(_REL_INDEX[rel2] for _, rel2 in NEIGHBOUR_SLOTS)


@cython.cclass
class _Table:
    """One relation's entities: their row in ``sums`` and how many transactions each has."""

    index: dict
    sums: Any  # float64 [capacity, F]
    counts: Any  # float64 [capacity]
    sp: cython.p_double  # compiled: the two arrays' data
    cp: cython.p_double

    def __init__(self) -> None:
        self.index = {}
        self._room(np.zeros((1024, _F)), np.zeros(1024))

    def __len__(self) -> int:
        return len(self.index)

    @cython.cfunc
    def _room(self, sums: Any, counts: Any) -> None:
        self.sums, self.counts = sums, counts
        if cython.compiled:
            s: cython.double[:, ::1] = sums
            c: cython.double[::1] = counts
            self.sp = cython.address(s[0, 0])
            self.cp = cython.address(c[0])

    @cython.ccall
    def slot(self, key: str) -> cython.Py_ssize_t:
        """The row of ``key``, a new (empty) one if it has none yet."""
        got = self.index.get(key)
        if got is not None:
            return cython.cast(cython.Py_ssize_t, got)
        i: cython.Py_ssize_t = len(self.index)
        if i == len(self.counts):  # full: twice the room
            self._room(
                np.concatenate((self.sums, np.zeros_like(self.sums))),
                np.concatenate((self.counts, np.zeros_like(self.counts))),
            )
        self.index[key] = i
        return i


class OnlineState:
    """Running sums and counts of past transactions' features, per entity and relation.

    :meth:`inputs` gives a transaction's aggregated inputs from its entities' state as it is;
    :meth:`add` then folds the transaction in; :meth:`fold` does both for a batch, row after
    row. Feeding a history row by row gives exactly :func:`gnn.online.dense_inputs` of it.
    """

    def __init__(self) -> None:
        self._tables = tuple(_Table() for _ in RELATIONS)
        self.transactions = 0

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables)

    def inputs(self, row: TxnRow) -> tuple[np.ndarray, np.ndarray]:
        """``(nb_mean [J, F_t], nb_count [J])`` for ``row``, before it is added."""
        mean, count = self._fold([row], add=False)
        return mean[0], count[0]

    def add(self, row: TxnRow) -> None:
        """Fold ``row`` into its entities' state."""
        if cython.compiled:
            _add(self._tables, row.entities, row.x)
        else:
            _add_numpy(self._tables, row.entities, row.x)
        self.transactions += 1

    def fold(self, rows: Sequence[TxnRow]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`inputs` then :meth:`add` for each row in order.

        Returns ``(nb_mean [N, J, F_t], nb_count [N, J])``: what row-by-row calls give.
        """
        return self._fold(rows, add=True)

    def _fold(self, rows: Sequence[TxnRow], add: bool) -> tuple[np.ndarray, np.ndarray]:
        n: cython.Py_ssize_t = len(rows)
        mean = np.zeros((n, _J, _F), dtype=np.float32)
        count = np.zeros((n, _J), dtype=np.float32)
        if n == 0:
            return mean, count
        tables = self._tables
        i: cython.Py_ssize_t
        if cython.compiled:
            m: cython.float[:, :, ::1] = mean
            c: cython.float[:, ::1] = count
            for i in range(n):
                row: TxnRow = rows[i]
                _read(tables, row.entities, cython.address(m[i, 0, 0]), cython.address(c[i, 0]))
                if add:
                    _add(tables, row.entities, row.x)
        else:
            for i in range(n):
                row = rows[i]
                _read_numpy(tables, row.entities, mean[i], count[i])
                if add:
                    _add_numpy(tables, row.entities, row.x)
        if add:
            self.transactions += n
        return mean, count


@cython.cfunc
def _read(tables: tuple, entities: tuple, mean: cython.p_float, count: cython.p_float) -> None:
    """One row's inputs (``mean [J, F]``, ``count [J]``): each slot's sums over its count."""
    nf: cython.Py_ssize_t = _F
    nj: cython.Py_ssize_t = _J
    j: cython.Py_ssize_t
    f: cython.Py_ssize_t
    for j in range(nj):
        key = entities[_READ_SLOTS[j]]
        if key is None:
            continue
        t: _Table = tables[_READ_TABLES[j]]
        got = t.index.get(key)
        if got is None:
            continue
        r: cython.Py_ssize_t = got
        c: cython.double = t.cp[r]
        sums: cython.p_double = t.sp + r * nf
        for f in range(nf):
            mean[j * nf + f] = cython.cast(cython.float, sums[f] / c)
        count[j] = cython.cast(cython.float, c)


@cython.cfunc
def _add(tables: tuple, entities: tuple, x: Any) -> None:
    """Add a row's features to each of its entities' sums (the first row is copied)."""
    xs: cython.float[:] = x
    nf: cython.Py_ssize_t = _F
    s: cython.Py_ssize_t
    f: cython.Py_ssize_t
    for s in range(len(tables)):
        key = entities[s]
        if key is None:
            continue
        t: _Table = tables[s]
        r: cython.Py_ssize_t = t.slot(key)
        sums: cython.p_double = t.sp + r * nf
        if t.cp[r] == 0:  # copied, not added to 0.0: a -0.0 stays -0.0
            for f in range(nf):
                sums[f] = xs[f]
        else:
            for f in range(nf):
                sums[f] += xs[f]
        t.cp[r] += 1


def _read_numpy(tables: tuple, entities: tuple, mean: Any, count: Any) -> None:
    """:func:`_read` as plain Python runs it."""
    for j in range(_J):
        key = entities[_READ_SLOTS[j]]
        if key is None:
            continue
        t = tables[_READ_TABLES[j]]
        r = t.index.get(key)
        if r is not None:
            mean[j] = t.sums[r] / t.counts[r]
            count[j] = t.counts[r]


def _add_numpy(tables: tuple, entities: tuple, x: Any) -> None:
    """:func:`_add` as plain Python runs it."""
    for s in range(len(tables)):
        key = entities[s]
        if key is None:
            continue
        t = tables[s]
        r = t.slot(key)
        if t.counts[r] == 0:
            t.sums[r] = x
        else:
            t.sums[r] += x
        t.counts[r] += 1


def compiled() -> bool:
    """Whether this module runs compiled (``make native``) rather than from its source."""
    return bool(cython.compiled)


if cython.compiled:  # a build older than its source runs yesterday's code: say so
    warn_if_stale(__file__)
