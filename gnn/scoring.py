"""Scoring a stream of canonical events in time order, exactly as production does.

:class:`Scorer` holds the feature state (:class:`gnn.features.FeatureState`) and the model's
per-entity aggregated state (:class:`gnn.online.OnlineState`). Each event updates the state;
each transaction is scored from its entities' state just before it, in micro-batches (the
state of transaction *i* is folded in before transaction *i + 1* reads it, so a batch gives the
same scores as one-by-one scoring). Decisions: ``block`` at or above the model's blocking
threshold, ``review`` at or above its review threshold, else ``approve``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gnn.features import FeatureState, TxnRow
from gnn.model import FraudSAGE, intra_op_threads
from gnn.online import OnlineState


@dataclass(frozen=True, slots=True)
class Scored:
    """One transaction's score and decision."""

    txn_id: str
    score: float
    decision: str


class Scorer:
    """Scores transactions as events arrive, building history as it goes.

    Args:
        model: the trained model.
        block: the blocking threshold.
        review: the review threshold (at most ``block``).
        batch: transactions per model call.
    """

    def __init__(self, model: FraudSAGE, *, block: float, review: float, batch: int = 256) -> None:
        if not 0 <= review <= block:
            raise ValueError(f"review threshold ({review}) must lie in [0, block ({block})]")
        self.model = model.eval()
        self.block = block
        self.review = review
        self.batch = batch
        self.features = FeatureState()
        self.state = OnlineState()

    @classmethod
    def from_manifest(cls, model: FraudSAGE, manifest: dict[str, Any], **kw: Any) -> Scorer:
        """A scorer with the thresholds stored with the model."""
        t = manifest["thresholds"]
        return cls(model, block=t["block"], review=t.get("review", t["block"]), **kw)

    def decide(self, score: float) -> str:
        """``block``, ``review`` or ``approve``."""
        if score >= self.block:
            return "block"
        return "review" if score >= self.review else "approve"

    def score_events(self, events: Iterable[Any]) -> Iterator[Scored]:
        """Fold each event in and yield each transaction's score, in order."""
        rows: list[TxnRow] = []
        nbs: list[tuple[np.ndarray, np.ndarray]] = []
        for event in events:
            row = self.features.observe(event)
            if row is None:
                continue
            nbs.append(self.state.inputs(row))
            self.state.add(row)
            rows.append(row)
            if len(rows) >= self.batch:
                yield from self._flush(rows, nbs)
                rows, nbs = [], []
        if rows:
            yield from self._flush(rows, nbs)

    def _flush(
        self, rows: list[TxnRow], nbs: list[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[Scored]:
        x = torch.from_numpy(np.stack([r.x for r in rows]))
        ex = torch.from_numpy(np.stack([r.entity_x for r in rows]))
        has = torch.tensor([[e is not None for e in r.entities] for r in rows], dtype=torch.float32)
        nb_mean = torch.from_numpy(np.stack([m for m, _ in nbs]))
        nb_count = torch.from_numpy(np.stack([c for _, c in nbs]))
        with torch.no_grad(), intra_op_threads(1):
            scores = torch.sigmoid(self.model.forward_dense(x, ex, has, nb_mean, nb_count))
        for row, s in zip(rows, scores.tolist(), strict=True):
            yield Scored(row.txn_id, s, self.decide(s))
