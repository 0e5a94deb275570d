"""The alert: what a block or a high-risk review tells the people on call."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

Clock = Callable[[], datetime]
"""A source of aware UTC datetimes; injected so tests control time."""


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Severity(StrEnum):
    """How urgent an alert is; routing and queue overflow go by it."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"

    @property
    def rank(self) -> int:
        """Higher is more urgent.

        >>> Severity.CRITICAL.rank > Severity.HIGH.rank > Severity.MEDIUM.rank
        True
        """
        return {"critical": 2, "high": 1, "medium": 0}[self.value]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert about a scored transaction.

    ``kind`` says what happened (``block``, ``review``, ``ring_block``, ...); ``created_at``
    must be aware and is kept in UTC.

    >>> from datetime import datetime, timezone, timedelta
    >>> a = Alert(
    ...     id="a1", severity="high", kind="review", title="Review txn t1", text="score 0.91",
    ...     txn_id="t1", account_id="acc_1", score=0.91, reasons=["new device"],
    ...     created_at=datetime(2026, 1, 2, 13, 0, tzinfo=timezone(timedelta(hours=1))),
    ... )
    >>> a.severity is Severity.HIGH, a.reasons, a.created_at.isoformat()
    (True, ('new device',), '2026-01-02T12:00:00+00:00')
    """

    id: str
    severity: Severity
    kind: str
    title: str
    text: str
    txn_id: str
    account_id: str
    score: float
    reasons: tuple[str, ...] = ()
    ring_id: str | None = None
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise ValueError("Alert.created_at must be an aware datetime")
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))
        if not self.id or not self.kind:
            raise ValueError("Alert.id and Alert.kind must not be empty")

    @classmethod
    def new(
        cls,
        severity: Severity | str,
        kind: str,
        title: str,
        text: str,
        *,
        txn_id: str,
        account_id: str,
        score: float,
        reasons: Iterable[str] = (),
        ring_id: str | None = None,
        clock: Clock = utc_now,
    ) -> Alert:
        """An alert with a fresh random id, created now (by ``clock``).

        >>> Alert.new("critical", "ring_block", "Ring r7 blocked", "3 accounts",
        ...           txn_id="t9", account_id="acc_2", score=0.99, ring_id="r7").ring_id
        'r7'
        """
        return cls(
            id=os.urandom(16).hex(),  # as random as uuid4().hex, without the UUID object
            severity=Severity(severity),
            kind=kind,
            title=title,
            text=text,
            txn_id=txn_id,
            account_id=account_id,
            score=score,
            reasons=tuple(reasons),
            ring_id=ring_id,
            created_at=clock(),
        )

    def plain_text(self) -> str:
        """The alert as a few lines of plain text (e-mail body, Slack fallback).

        >>> print(Alert.new("high", "review", "Review t1", "Score above threshold",
        ...                 txn_id="t1", account_id="acc_1", score=0.912,
        ...                 reasons=["new device", "velocity"]).plain_text())
        ... # doctest: +ELLIPSIS
        [HIGH] Review t1
        Score above threshold
        kind: review  score: 0.912
        txn: t1  account: acc_1
        reasons: new device; velocity
        at: ...
        """
        lines = [f"[{self.severity.value.upper()}] {self.title}", self.text]
        lines.append(f"kind: {self.kind}  score: {self.score:.3f}")
        ids = f"txn: {self.txn_id}  account: {self.account_id}"
        if self.ring_id:
            ids += f"  ring: {self.ring_id}"
        lines.append(ids)
        if self.reasons:
            lines.append("reasons: " + "; ".join(self.reasons))
        lines.append(f"at: {self.created_at.isoformat()}")
        return "\n".join(lines)
