"""Ringfence's error hierarchy: every package's errors derive from here.

::


    RingfenceError                  base; ``is_retryable()`` says whether trying again may help
    +-- RecordRejected              a record failed validation; carries FieldErrors (not retryable)
    +-- SourceError                 a source cannot be read at all (missing file, bad manifest)
    +-- BusError                    the event bus failed
    |   +-- BusCorrupted            a log segment is damaged beyond its torn tail
    +-- ReconciliationError         counts do not add up (accepted + rejected + dups != received)

``serve`` maps these to HTTP statuses in one place; ingest consults ``is_retryable()`` to decide
between retrying and dead-lettering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class RingfenceError(Exception):
    """Base class of Ringfence's errors."""

    retryable = False

    def is_retryable(self) -> bool:
        """Whether the same operation may succeed if tried again."""
        return self.retryable


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a record was rejected: the field (``(record)`` for the whole record) and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


RECORD = "(record)"
"""The ``field`` of a FieldError about the record as a whole (unparseable, oversized...)."""


class RecordRejected(RingfenceError):
    """A record failed validation. ``errors`` lists every bad field."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(map(str, self.errors)))


class SourceError(RingfenceError):
    """A source cannot be read (missing path, unreadable database, invalid manifest)."""


class BusError(RingfenceError):
    """The event bus failed to append or read."""

    retryable = True


class BusCorrupted(BusError):
    """A log segment is damaged somewhere other than its torn tail."""

    retryable = False


class ReconciliationError(RingfenceError):
    """Counts do not reconcile: accepted + rejected + duplicates != received."""
