"""Asynchronous alert dispatch: route, deduplicate, deliver with retries, log every outcome.

:meth:`AlertDispatcher.submit` only puts the alert on a bounded in-memory queue and returns; it
never raises and never touches the network or the disk. A router thread deduplicates and fans
the alert out to one bounded queue per channel, and each channel has its own worker thread, so
a slow or dead channel delays only itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from serve.alerts.channels import Channel, ChannelError
from serve.alerts.dedup import DedupKey, Deduplicator, ring_or_account_key
from serve.alerts.log import DeliveryLog, DeliveryRecord, Status
from serve.alerts.model import Alert, Clock, Severity, utc_now
from serve.alerts.retry import RetryPolicy

logger = logging.getLogger(__name__)

_POLL = 0.05


class Router:
    """Which channels get which severities.

    >>> router = Router({"slack": ["critical", "high", "medium"], "sms": ["critical"]})
    >>> router.channels_for(Severity.CRITICAL), router.channels_for("medium")
    (['slack', 'sms'], ['slack'])
    """

    def __init__(self, routes: Mapping[str, Iterable[Severity | str]]) -> None:
        self.routes = {name: frozenset(Severity(s) for s in sev) for name, sev in routes.items()}

    def channels_for(self, severity: Severity | str) -> list[str]:
        """The names of the channels that take ``severity``, in configuration order."""
        wanted = Severity(severity)
        return [name for name, severities in self.routes.items() if wanted in severities]


@dataclass(frozen=True, slots=True)
class _Entry:
    alert: Alert
    submitted_at: datetime


T = TypeVar("T", bound=_Entry)


class _AlertQueue(Generic[T]):
    """A bounded FIFO that, when full, drops the oldest entry of the lowest severity."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("queue size must be at least 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cv = threading.Condition()
        self.closed = False

    def put(self, item: T) -> tuple[bool, T | None]:
        """Queue ``item``; return (accepted, the entry dropped to make room or ``None``)."""
        with self._cv:
            if self.closed:
                return False, None
            dropped: T | None = None
            if len(self._items) >= self.maxsize:
                lowest = min(self._items, key=lambda e: e.alert.severity.rank)
                if item.alert.severity.rank < lowest.alert.severity.rank:
                    return False, item
                self._items.remove(lowest)
                dropped = lowest
            self._items.append(item)
            self._cv.notify()
            return True, dropped

    def get(self, timeout: float) -> T | None:
        """The next entry, or ``None`` after ``timeout`` seconds or once closed and empty."""
        with self._cv:
            if not self._items and not self.closed:
                self._cv.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """Refuse new entries; readers drain what is left."""
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def finished(self) -> bool:
        """Closed and empty."""
        with self._cv:
            return self.closed and not self._items


class AlertDispatcher:
    """Delivers alerts to channels in the background; see the module docstring.

    Args:
        channels: The channels, by their distinct ``name``.
        router: Which channel gets which severity.
        log: Where every outcome is recorded.
        retry: Attempts and backoff per channel delivery.
        dedup_window: One alert per dedup key per window (zero turns dedup off).
        dedup_key: The key of an alert (default: its ring, else its account).
        clock: Aware UTC time; dedup windows and log timestamps use it.
        sleep: Waits between retries (default: a wait that :meth:`close` can cut short).
        queue_size: Bound of the intake queue.
        channel_queue_size: Bound of each channel's queue (default: ``queue_size``).
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        router: Router,
        log: DeliveryLog,
        *,
        retry: RetryPolicy | None = None,
        dedup_window: timedelta = timedelta(minutes=15),
        dedup_key: DedupKey = ring_or_account_key,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] | None = None,
        queue_size: int = 1000,
        channel_queue_size: int | None = None,
    ) -> None:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be distinct: {names}")
        unknown = set(router.routes) - set(names)
        if unknown:
            raise ValueError(f"routes name unknown channels: {sorted(unknown)}")
        self.channels = {c.name: c for c in channels}
        self.router = router
        self.log = log
        self.retry = retry or RetryPolicy()
        self.dedup = Deduplicator(dedup_window)
        self._dedup_key = dedup_key
        self._clock = clock
        self._abort = threading.Event()
        self._sleep = sleep or (lambda seconds: self._abort.wait(seconds) and None)
        self._intake: _AlertQueue[_Entry] = _AlertQueue(queue_size)
        self._queues: dict[str, _AlertQueue[_Entry]] = {
            name: _AlertQueue(channel_queue_size or queue_size) for name in self.channels
        }
        self._drops: deque[_Entry] = deque()
        self._pending = 0
        self._pending_cv = threading.Condition()
        self._closed = False
        self._router_thread = threading.Thread(
            target=self._route_loop, name="alerts-router", daemon=True
        )
        self._workers = [
            threading.Thread(
                target=self._channel_loop, args=(name,), name=f"alerts-{name}", daemon=True
            )
            for name in self.channels
        ]
        self._router_thread.start()
        for worker in self._workers:
            worker.start()

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the caller's side ------------------------------------------------------------------

    def wants(self, severity: Severity | str) -> bool:
        """Whether any channel takes alerts of ``severity`` (the others would go nowhere).

        The scoring pipeline asks before it builds an alert, so a severity no channel takes
        costs nothing on the hot path.
        """
        return bool(self.router.channels_for(severity))

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` for delivery and return at once; never raises.

        Returns whether the alert was queued: ``False`` after :meth:`close`, or when the queue
        is full of more severe alerts. A full queue otherwise drops its oldest alert of the
        lowest severity, which is logged as ``dropped``.
        """
        try:
            self._add_pending(1)
            accepted, dropped = self._intake.put(_Entry(alert, self._clock()))
            if dropped is not None:
                self._drops.append(dropped)
                self._add_pending(-1)
                logger.warning(
                    "alert queue full: dropped %s alert %s",
                    dropped.alert.severity.value,
                    dropped.alert.id,
                )
            if not accepted:
                if dropped is None:
                    self._add_pending(-1)
                    logger.warning("alert dispatcher closed: alert %s not sent", alert.id)
                return False
            return True
        except Exception:
            logger.exception("could not queue alert")
            return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert is delivered, failed or dropped; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._pending_cv:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_cv.wait(left)
            return True

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking alerts and drain the queues for up to ``timeout`` seconds.

        Returns whether everything drained. Past the timeout, retries stop, what is still
        queued is logged ``failed``, and a delivery stuck in a network call is left to its
        channel timeout on a daemon thread.
        """
        deadline = time.monotonic() + timeout
        self._closed = True
        self._intake.close()
        for thread in (self._router_thread, *self._workers):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._router_thread.is_alive() or any(w.is_alive() for w in self._workers):
            self._abort.set()
            logger.warning("alert dispatcher closed with deliveries still in progress")
            return False
        self.log.close()
        return True

    # -- background threads -------------------------------------------------------------------

    def _add_pending(self, n: int) -> None:
        with self._pending_cv:
            self._pending += n
            if self._pending <= 0:
                self._pending_cv.notify_all()

    def _record(
        self,
        entry: _Entry,
        channel: str,
        attempt: int,
        status: Status,
        error: str | None = None,
        key: str | None = None,
        at: datetime | None = None,
    ) -> None:
        if error is not None:
            error = self._mask(error)
        alert = entry.alert
        try:
            self.log.append(
                DeliveryRecord(
                    alert_id=alert.id,
                    channel=channel,
                    attempt=attempt,
                    status=status,
                    error=error,
                    at=at or self._clock(),
                    alert_created_at=alert.created_at,
                    severity=alert.severity.value,
                    kind=alert.kind,
                    dedup_key=key,
                )
            )
        except Exception:
            logger.exception("could not write the alert delivery log")

    def _mask(self, text: str) -> str:
        for channel in self.channels.values():
            text = channel.mask(text)
        return text

    def _log_drops(self) -> None:
        while self._drops:
            self._record(self._drops.popleft(), "*", 0, "dropped", "intake queue full")

    def _route_loop(self) -> None:
        while True:
            self._log_drops()
            entry = self._intake.get(_POLL)
            if entry is None:
                if self._intake.finished():
                    break
                continue
            try:
                self._route(entry)
            except Exception:
                logger.exception("could not route alert %s", entry.alert.id)
            finally:
                self._add_pending(-1)
        self._log_drops()
        for queue in self._queues.values():
            queue.close()

    def _route(self, entry: _Entry) -> None:
        alert = entry.alert
        names = self.router.channels_for(alert.severity)
        if not names:
            return
        key = self._dedup_key(alert)
        if not self.dedup.admit(key, entry.submitted_at, alert.severity.rank):
            for name in names:
                self._record(entry, name, 0, "deduplicated", key=key, at=entry.submitted_at)
            return
        for name in names:
            self._add_pending(1)
            accepted, dropped = self._queues[name].put(entry)
            if dropped is not None:
                self._add_pending(-1)
                self._record(dropped, name, 0, "dropped", "channel queue full")
                logger.warning("%s queue full: dropped alert %s", name, dropped.alert.id)
            if not accepted and dropped is None:
                self._add_pending(-1)

    def _channel_loop(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            entry = queue.get(_POLL)
            if entry is None:
                if queue.finished():
                    return
                continue
            try:
                if self._abort.is_set():
                    self._record(entry, name, 0, "failed", "dispatcher closed before delivery")
                else:
                    self._deliver(name, entry)
            except Exception:
                logger.exception("alert worker %s failed on alert %s", name, entry.alert.id)
            finally:
                self._add_pending(-1)

    def _deliver(self, name: str, entry: _Entry) -> None:
        channel = self.channels[name]
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                channel.send(entry.alert)
            except ChannelError as exc:
                error, retryable = self._mask(str(exc)), exc.retryable
            except Exception as exc:
                error, retryable = self._mask(f"{type(exc).__name__}: {exc}"), False
            else:
                self._record(entry, name, attempt, "sent")
                return
            self._record(entry, name, attempt, "failed", error)
            logger.warning(
                "alert %s via %s attempt %d/%d failed: %s",
                entry.alert.id,
                name,
                attempt,
                self.retry.max_attempts,
                error,
            )
            if not retryable or attempt >= self.retry.max_attempts or self._abort.is_set():
                return
            self._sleep(self.retry.delay(attempt))
