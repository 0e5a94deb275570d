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

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.deadletter import DeadLetterStore
from ingest.dedup import SeenIds
from ingest.errors import ReconciliationError, RecordRejected
from ingest.events import encode_event
from ingest.expectations import ColumnCollector, ExpectationReport, run_expectations
from ingest.sources import SourceSpec, format_location, raw_for_storage
from ingest.validate import Validator

EVENTS_TOPIC = "events"


class Appender(Protocol):
    """What ingest needs of the bus."""

    def append(
        self,
        topic: str,
        payloads: list[bytes],
        keys: list[str | None] | None = None,
    ) -> int:
        """Append payloads durably; return the offset of the last one."""
        ...

    def end_offset(self, topic: str) -> int:
        """The offset the next append will get."""
        ...


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


class _Writer:
    """Appends batches to the bus on a background thread, one batch in flight at a time.

    The bus append (a write and an fsync) and the id-file update release the GIL, so the next
    batch is parsed and validated while the previous one is made durable. Order is kept: a
    batch is submitted only after the one before it has finished, and an error in the
    background surfaces at the next submit or at :meth:`drain`.
    """

    def __init__(self, bus: Appender, seen: SeenIds) -> None:
        self._bus = bus
        self._seen = seen
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-append")
        self._inflight: Future[None] | None = None

    def _append(self, payloads: list[bytes], keys: list[str | None], ids: list[str]) -> None:
        last = self._bus.append(EVENTS_TOPIC, payloads, keys)
        self._seen.persist(ids, last + 1)

    def submit(self, payloads: list[bytes], keys: list[str | None], ids: list[str]) -> None:
        """Wait for the batch in flight, then start appending this one."""
        self.drain()
        self._inflight = self._pool.submit(self._append, payloads, keys, ids)

    def drain(self) -> None:
        """Wait until every submitted batch is durable (re-raising a failure)."""
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.result()

    def close(self) -> None:
        """Drain, then stop the thread."""
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)


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
    validate = validator.validate
    validate_json = validator.validate_json
    seen_ids = seen.ids
    writer = _Writer(bus, seen)
    gc_threshold = gc.get_threshold()
    # Ingest allocates a few objects per record and frees them a batch later; the default
    # collector threshold would run a generation-0 scan every 700 of them, for nothing.
    gc.set_threshold(max(gc_threshold[0], 50_000), *gc_threshold[1:])
    try:
        for spec in specs:
            validator.refresh_clock()
            counts = results.setdefault(spec.name, SourceCounts())
            counts.files += len(spec.paths)
            collector = ColumnCollector() if check_expectations else None
            received = accepted = duplicates = 0
            by_type: dict[str, int] = {}
            payloads: list[bytes] = []
            keys: list[str | None] = []
            ids: list[str] = []
            events: list[Any] = []
            for location, raw, record, error, event_type in spec.read():
                received += 1
                if error is None:
                    try:
                        if type(record) is bytes:
                            event = validate_json(record, event_type=event_type)
                        else:
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
                        event_type=event_type
                        or (record.get("event_type") if isinstance(record, dict) else None),
                        error=error,
                    )
                    continue
                et = event.event_type
                key = f"{et}:{event.txn_id if et == 'transaction' else event.event_id}"
                if key in seen_ids:
                    duplicates += 1
                    continue
                seen_ids.add(key)  # in memory now; on disk once the bus holds the event
                ids.append(key)
                payloads.append(encode_event(event))
                keys.append(event.account_id or getattr(event, "device_id", None))
                events.append(event)
                accepted += 1
                by_type[et] = by_type.get(et, 0) + 1
                if len(payloads) >= batch_size:
                    writer.submit(payloads, keys, ids)
                    if collector is not None:
                        collector.add(events)
                    payloads, keys, ids, events = [], [], [], []
                    now = time.perf_counter()
                    if progress is not None and now - last_report > progress_every_s:
                        last_report = now
                        done = sum(c.received for c in results.values()) + received
                        progress(
                            f"{spec.name}: {received:,} records ({done / (now - started):,.0f}/s)"
                        )
            if payloads:
                writer.submit(payloads, keys, ids)
                if collector is not None:
                    collector.add(events)
            writer.drain()
            dead_letters.flush()
            counts.received += received
            counts.accepted += accepted
            counts.duplicates += duplicates
            counts.accepted_by_type.update(by_type)
            if collector is not None:
                counts.expectations = run_expectations(collector)
            if not counts.reconciles():
                raise ReconciliationError(
                    f"source {spec.name!r}: accepted {counts.accepted} + rejected "
                    f"{counts.rejected} + duplicates {counts.duplicates} != received "
                    f"{counts.received}"
                )
            if progress is not None:
                progress(
                    f"{spec.name}: {counts.received:,} received, {counts.accepted:,} accepted, "
                    f"{counts.rejected:,} rejected, {counts.duplicates:,} duplicates"
                )
    finally:
        gc.set_threshold(*gc_threshold)
        writer.close()
    return IngestSummary(
        sources=results,
        elapsed_s=time.perf_counter() - started,
        bus_end_offset=bus.end_offset(EVENTS_TOPIC),
        dead_letters_added=dead_letters.added,
    )
