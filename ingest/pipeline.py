"""The ingest use case: read sources, validate, de-duplicate, append to the bus, account for all.

For every record a source yields, exactly one of three things happens, and is counted:

- **accepted**: valid and new; serialised and appended to the bus (topic ``events``, keyed by
  account so one account's events keep their order);
- **rejected**: unparseable or invalid; written to the dead-letter store with its reasons;
- **duplicate**: valid but its id was already accepted (now or in an earlier run); dropped.

``received == accepted + rejected + duplicates`` is checked for every source before the summary
is returned; a mismatch raises :class:`ReconciliationError` (a bug, never silently passed).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.deadletter import DeadLetterStore
from ingest.dedup import SeenIds
from ingest.errors import RecordRejected, ReconciliationError
from ingest.events import encode_event
from ingest.expectations import ColumnCollector, ExpectationReport, run_expectations
from ingest.sources import SourceSpec, format_location, raw_for_storage
from ingest.validate import Validator

EVENTS_TOPIC = "events"


class Appender(Protocol):
    """What ingest needs of the bus."""

    def append(self, topic: str, payloads: list[bytes], keys: list[str | None] | None = None,
               ) -> int: ...


@dataclass(slots=True)
class SourceCounts:
    """What happened to one source's records."""

    received: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    accepted_by_type: Counter[str] = field(default_factory=Counter)
    rejected_by_field: Counter[str] = field(default_factory=Counter)
    files: int = 0
    expectations: list[ExpectationReport] = field(default_factory=list)

    def reconciles(self) -> bool:
        """Whether every received record is accounted for exactly once."""
        return self.accepted + self.rejected + self.duplicates == self.received

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the summary."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "reconciled": self.reconciles(),
            "files": self.files,
            "accepted_by_type": dict(sorted(self.accepted_by_type.items())),
            "rejected_by_field": dict(self.rejected_by_field.most_common()),
            "expectations": [e.to_dict() for e in self.expectations],
        }


@dataclass(slots=True)
class IngestSummary:
    """The outcome of one ingest run."""

    sources: dict[str, SourceCounts]
    elapsed_s: float
    bus_end_offset: int
    dead_letters_added: int

    def totals(self) -> SourceCounts:
        """The sum over all sources."""
        total = SourceCounts()
        for c in self.sources.values():
            total.received += c.received
            total.accepted += c.accepted
            total.rejected += c.rejected
            total.duplicates += c.duplicates
            total.files += c.files
            total.accepted_by_type.update(c.accepted_by_type)
            total.rejected_by_field.update(c.rejected_by_field)
        return total

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: per-source counts, totals, throughput."""
        totals = self.totals().to_dict()
        del totals["expectations"]
        failed = [
            {"source": name, **e.to_dict()}
            for name, c in self.sources.items()
            for e in c.expectations
            if not e.passed
        ]
        return {
            "sources": {name: c.to_dict() for name, c in self.sources.items()},
            "totals": totals,
            "expectations_failed": failed,
            "dead_letters_added": self.dead_letters_added,
            "bus_end_offset": self.bus_end_offset,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(totals["received"] / self.elapsed_s) if self.elapsed_s else 0,
        }


def ingest(
    specs: Iterable[SourceSpec],
    *,
    bus: Appender,
    dead_letters: DeadLetterStore,
    seen: SeenIds,
    validator: Validator,
    batch_size: int = 5000,
    check_expectations: bool = True,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 2.0,
) -> IngestSummary:
    """Ingest every record of every source; see the module docstring for the accounting.

    Args:
        specs: the sources to read.
        bus: where accepted events go.
        dead_letters: where rejected records go.
        seen: ids already accepted (updated as events are appended).
        validator: the record validator.
        batch_size: events appended to the bus per call.
        check_expectations: run the per-source data expectations.
        progress: called with a one-line progress message now and then.
        progress_every_s: how often ``progress`` is called.
    """
    started = time.perf_counter()
    last_report = started
    results: dict[str, SourceCounts] = {}
    end_offset = -1
    validate = validator.validate
    for spec in specs:
        counts = results.setdefault(spec.name, SourceCounts())
        counts.files += len(spec.paths)
        collector = ColumnCollector() if check_expectations else None
        payloads: list[bytes] = []
        keys: list[str | None] = []
        batch_ids: list[str] = []
        batch_events: list[Any] = []
        in_batch: set[str] = set()
        seen_ids = seen.ids

        def flush() -> None:
            nonlocal end_offset
            if payloads:
                end_offset = bus.append("events", payloads, keys)
                seen.add_many(batch_ids, end_offset + 1)
                if collector is not None:
                    collector.add(batch_events)
                payloads.clear()
                keys.clear()
                batch_ids.clear()
                batch_events.clear()
                in_batch.clear()

        for location, raw, record, error, event_type in spec.read():
            counts.received += 1
            if error is None:
                try:
                    event = validate(record, event_type=event_type)  # type: ignore[arg-type]
                except RecordRejected as exc:
                    error = exc
            if error is not None:
                counts.rejected += 1
                counts.rejected_by_field[error.errors[0].field] += 1
                stored, encoding = raw_for_storage(raw)
                dead_letters.add(
                    source=spec.name,
                    location=format_location(location),
                    raw=stored,
                    raw_encoding=encoding,
                    event_type=event_type or (record or {}).get("event_type"),
                    error=error,
                )
                continue
            et = event.event_type
            dedup_key = f"{et}:{event.txn_id if et == 'transaction' else event.event_id}"
            if dedup_key in seen_ids or dedup_key in in_batch:
                counts.duplicates += 1
                continue
            in_batch.add(dedup_key)
            batch_ids.append(dedup_key)
            payloads.append(encode_event(event))
            keys.append(getattr(event, "account_id", None) or getattr(event, "device_id", None))
            batch_events.append(event)
            counts.accepted += 1
            counts.accepted_by_type[et] += 1
            if len(payloads) >= batch_size:
                flush()
                if progress is not None and time.perf_counter() - last_report > progress_every_s:
                    last_report = time.perf_counter()
                    rate = sum(c.received for c in results.values()) / (last_report - started)
                    progress(f"{spec.name}: {counts.received:,} records ({rate:,.0f} records/s)")
        flush()
        dead_letters.flush()
        if collector is not None:
            counts.expectations = run_expectations(collector)
        if not counts.reconciles():
            raise ReconciliationError(
                f"source {spec.name!r}: accepted {counts.accepted} + rejected {counts.rejected} "
                f"+ duplicates {counts.duplicates} != received {counts.received}"
            )
        if progress is not None:
            progress(
                f"{spec.name}: {counts.received:,} received, {counts.accepted:,} accepted, "
                f"{counts.rejected:,} rejected, {counts.duplicates:,} duplicates"
            )
    return IngestSummary(
        sources=results,
        elapsed_s=time.perf_counter() - started,
        bus_end_offset=end_offset + 1,
        dead_letters_added=dead_letters.added,
    )
