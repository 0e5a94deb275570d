"""The dead-letter store: every rejected record, with where it came from and why.

One JSON object per line in ``<data dir>/deadletter/deadletter.jsonl``::

    {"rejected_at": "...Z", "source": "gw_paynova", "location": "batch_0101.csv:17",
     "event_type": "transaction", "field": "amount", "reason": "must be > 0, got -3",
     "errors": [{"field": "amount", "reason": "..."}], "raw": "...", "raw_encoding": "json"}

Entries are keyed by (source, location, raw): rejecting the same record again (re-ingesting the
same file) does not add a second entry, so re-ingest changes nothing here either.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ingest.errors import RecordRejected


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected record, as stored."""

    rejected_at: str
    source: str
    location: str
    event_type: str | None
    field: str
    reason: str
    errors: list[dict[str, str]]
    raw: Any
    raw_encoding: str


def _raw_key(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    try:
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return repr(raw).encode("utf-8", "backslashreplace")


class DeadLetterStore:
    """Append-only store of rejected records, de-duplicated by (source, location, raw).

    Args:
        root: folder of the store (created if missing).
        now: the clock, injected.
    """

    FILE = "deadletter.jsonl"

    def __init__(self, root: Path, *, now: Callable[[], datetime] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / self.FILE
        self._now = now or (lambda: datetime.now(UTC))
        self._keys: set[str] = set()
        keys_path = root / "keys"
        if keys_path.exists():
            self._keys.update(keys_path.read_text(encoding="ascii").split())
        self._fh = self.path.open("ab")
        self._keys_fh = keys_path.open("a", encoding="ascii")
        self.added = 0

    def add(
        self,
        *,
        source: str,
        location: str,
        raw: Any,
        raw_encoding: str,
        event_type: str | None,
        error: RecordRejected,
    ) -> bool:
        """Store one rejected record; returns False when it was already stored."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(source.encode() + b"\0" + location.encode("utf-8", "replace") + b"\0")
        digest.update(_raw_key(raw))
        key = digest.hexdigest()
        if key in self._keys:
            return False
        first = error.errors[0]
        entry = {
            "rejected_at": self._now().isoformat().replace("+00:00", "Z"),
            "source": source,
            "location": location,
            "event_type": event_type,
            "field": first.field,
            "reason": first.reason,
            "errors": [{"field": e.field, "reason": e.reason} for e in error.errors],
            "raw": raw,
            "raw_encoding": raw_encoding,
        }
        try:
            line = orjson.dumps(entry, default=str)
        except TypeError:
            entry["raw"], entry["raw_encoding"] = repr(raw), "repr"
            line = orjson.dumps(entry, default=str)
        self._fh.write(line + b"\n")
        self._keys_fh.write(key + "\n")
        self._keys.add(key)
        self.added += 1
        return True

    def flush(self) -> None:
        """Make what was added durable."""
        for fh in (self._fh, self._keys_fh):
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._fh.close()
        self._keys_fh.close()

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[DeadLetter]:
        self._fh.flush()
        return read_dead_letters(self.path)


def read_dead_letters(path: Path) -> Iterator[DeadLetter]:
    """Read every entry of a dead-letter file."""
    if path.is_dir():
        path = path / DeadLetterStore.FILE
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield DeadLetter(**orjson.loads(line))
