"""Deduplication: one alert per ring (or per account) per window."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from serve.alerts.model import Alert

DedupKey = Callable[[Alert], str | None]
"""Maps an alert to its dedup key; ``None`` means never deduplicate it."""


def ring_or_account_key(alert: Alert) -> str:
    """The default key: the ring when there is one, else the account.

    >>> from serve.alerts.model import Alert
    >>> ring_or_account_key(Alert.new("high", "ring_block", "t", "x", txn_id="t1",
    ...                               account_id="a1", score=0.9, ring_id="r1"))
    'ring:r1'
    >>> ring_or_account_key(Alert.new("high", "block", "t", "x", txn_id="t1",
    ...                               account_id="a1", score=0.9))
    'account:a1'
    """
    return f"ring:{alert.ring_id}" if alert.ring_id else f"account:{alert.account_id}"


class Deduplicator:
    """Lets the first alert of a key through, then suppresses the key for ``window``.

    The window starts at the alert that was let through; suppressed alerts do not extend it.
    An alert more severe (higher ``rank``) than the one that opened the window still goes out,
    and opens a new window at its own rank.

    >>> from datetime import UTC
    >>> dedup = Deduplicator(timedelta(minutes=15))
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> dedup.admit("ring:r1", t0), dedup.admit("ring:r1", t0 + timedelta(minutes=14))
    (True, False)
    >>> dedup.admit("ring:r1", t0 + timedelta(minutes=15))
    True
    >>> dedup.admit("ring:r1", t0 + timedelta(minutes=16), rank=2)
    True
    """

    def __init__(self, window: timedelta, *, max_keys: int = 100_000) -> None:
        if window < timedelta(0):
            raise ValueError("the dedup window must not be negative")
        self.window = window
        self.max_keys = max_keys
        self._until: dict[str, tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str | None, now: datetime, rank: int = 0) -> bool:
        """Whether an alert with ``key`` at ``now`` should go out (and, if so, record it)."""
        if key is None or not self.window:
            return True
        with self._lock:
            held = self._until.get(key)
            if held is not None and now < held[0] and rank <= held[1]:
                return False
            self._until[key] = (now + self.window, rank)
            if len(self._until) > self.max_keys:
                self._prune(now)
            return True

    def _prune(self, now: datetime) -> None:
        """Forget expired keys; if still too many, the ones expiring soonest."""
        self._until = {k: u for k, u in self._until.items() if u[0] > now}
        if len(self._until) > self.max_keys:
            keep = sorted(self._until.items(), key=lambda kv: kv[1][0])[-self.max_keys :]
            self._until = dict(keep)
