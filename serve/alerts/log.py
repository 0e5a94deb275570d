"""The delivery log: one JSON line per attempt, appended to a file in a given folder."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

Status = Literal["sent", "failed", "deduplicated", "dropped"]
STATUSES: tuple[Status, ...] = ("sent", "failed", "deduplicated", "dropped")
LOG_NAME = "alert-deliveries.jsonl"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One line of the delivery log.

    ``attempt`` counts from 1 for delivery attempts and is 0 for an alert that never reached
    the channel (``deduplicated``, ``dropped``). ``error`` is already masked.
    """

    alert_id: str
    channel: str
    attempt: int
    status: Status
    error: str | None
    at: datetime
    alert_created_at: datetime
    severity: str
    kind: str
    dedup_key: str | None = None

    def to_json(self) -> str:
        """The record as one JSON line (without the newline)."""
        data = {name: getattr(self, name) for name in self.__slots__}  # no deep copy
        data["at"] = self.at.isoformat()
        data["alert_created_at"] = self.alert_created_at.isoformat()
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> DeliveryRecord:
        """Parse one line written by :meth:`to_json`."""
        data = json.loads(line)
        data["at"] = datetime.fromisoformat(data["at"])
        data["alert_created_at"] = datetime.fromisoformat(data["alert_created_at"])
        return cls(**data)


class DeliveryLog:
    """An append-only JSON-lines file of :class:`DeliveryRecord`; safe across threads.

    >>> import tempfile
    >>> from datetime import UTC
    >>> log = DeliveryLog(Path(tempfile.mkdtemp()))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> log.append(DeliveryRecord("a1", "slack", 1, "sent", None, t, t, "high", "block"))
    >>> [(r.alert_id, r.status) for r in log.query(channel="slack")]
    [('a1', 'sent')]
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOG_NAME
        self._lock = threading.Lock()
        self._out: TextIO | None = None

    def append(self, record: DeliveryRecord) -> None:
        """Append one record, written at once.

        The file is opened for the first record and kept open: opening it for each was 8% of a
        busy scoring process's samples.
        """
        line = record.to_json() + "\n"
        with self._lock:
            if self._out is None:
                self._out = self.path.open("a", encoding="utf-8", buffering=1)  # line by line
            self._out.write(line)

    def close(self) -> None:
        """Close the file (a later :meth:`append` opens it again)."""
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None

    def records(self) -> Iterator[DeliveryRecord]:
        """Every record, oldest first (a torn last line is skipped)."""
        if not self.path.exists():
            return
        with self._lock:
            text = self.path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                yield DeliveryRecord.from_json(line)
            except (ValueError, TypeError, KeyError):
                continue

    def query(
        self,
        *,
        alert_id: str | None = None,
        channel: str | None = None,
        status: Status | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeliveryRecord]:
        """The records matching every given filter; ``since`` inclusive, ``until`` exclusive."""
        return [
            r
            for r in self.records()
            if (alert_id is None or r.alert_id == alert_id)
            and (channel is None or r.channel == channel)
            and (status is None or r.status == status)
            and (since is None or r.at >= since)
            and (until is None or r.at < until)
        ]


def query_deliveries(
    folder: Path,
    *,
    alert_id: str | None = None,
    channel: str | None = None,
    status: Status | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DeliveryRecord]:
    """:meth:`DeliveryLog.query` on the log in ``folder`` (for tools and the CLI)."""
    return DeliveryLog(folder).query(
        alert_id=alert_id, channel=channel, status=status, since=since, until=until
    )
