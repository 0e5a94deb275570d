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

import torch

from gnn.features import FeatureState, TxnRow
from gnn.model import FraudSAGE, intra_op_threads
from gnn.online import OnlineState, batch_tensors


def model_decision(score: float, block: float, review: float) -> str:
    """The model's decision: ``block``, ``review`` or ``approve`` by the two thresholds."""
    if score >= block:
        return "block"
    return "review" if score >= review else "approve"


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
        return model_decision(score, self.block, self.review)

    def score_events(self, events: Iterable[Any]) -> Iterator[Scored]:
        """Fold each event in and yield each transaction's score, in order."""
        rows: list[TxnRow] = []
        for event in events:
            row = self.features.observe(event)
            if row is None:
                continue
            rows.append(row)
            if len(rows) >= self.batch:
                yield from self._flush(rows)
                rows = []
        if rows:
            yield from self._flush(rows)

    def _flush(self, rows: list[TxnRow]) -> Iterator[Scored]:
        nbs = self.state.fold(rows)
        with torch.no_grad(), intra_op_threads(1):
            scores = torch.sigmoid(self.model.forward_dense(*batch_tensors(rows, nbs)))
        for row, s in zip(rows, scores.tolist(), strict=True):
            yield Scored(row.txn_id, s, self.decide(s))
