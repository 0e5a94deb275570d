"""Warm start: rebuild a fresh scoring pipeline's state before it takes requests.

Two passes, both through :meth:`serve.pipeline.ScoringPipeline.warm` (state only: no blocks,
alerts or decision hook):

1. the bus's ``events`` topic from its first record, in bus order (everything ingested, as the
   stream consumer sees it), read in its own consumer group that never commits;
2. the decision journal (:mod:`serve.journal`): its transactions are folded in after the bus's
   events, and its decisions are taken as the answers already given
   (:meth:`~serve.pipeline.ScoringPipeline.remember`), so a gateway's retry of a transaction
   decided before a restart gets its first answer back, marked ``replayed``.

A transaction both on the bus and in the journal is folded in once (the second time is a
replay) and answers with the journal's decision: the one the gateway was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ingest.events import decode_event
from ingest.pipeline import EVENTS_TOPIC
from serve.journal import read_journal
from serve.pipeline import ScoringPipeline

GROUP: Final = "serve-warm"
"""The bus consumer group the rebuild reads in (it never commits)."""
BATCH: Final = 5000
PROGRESS_EVERY: Final = 200_000


@dataclass(slots=True)
class WarmSummary:
    """What a warm start rebuilt."""

    bus_events: int = 0
    journal_records: int = 0
    transactions: int = 0
    remembered: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "bus_events": self.bus_events,
            "journal_records": self.journal_records,
            "transactions_rebuilt": self.transactions,
            "decisions_remembered": self.remembered,
            "seconds": round(self.seconds, 2),
        }

    def line(self) -> str:
        """One line for the log."""
        return (
            f"warm start: {self.bus_events:,} bus events and {self.journal_records:,} journal "
            f"records rebuilt ({self.transactions:,} transactions scored, "
            f"{self.remembered:,} decisions remembered) in {self.seconds:.1f} s"
        )


def warm_start(
    pipeline: ScoringPipeline,
    *,
    bus: Any | None,
    journal: Path | None,
    batch: int = BATCH,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmSummary:
    """Rebuild ``pipeline``'s state from the bus (when given) and the journal (when given).

    Args:
        pipeline: a fresh pipeline (nothing scored yet).
        bus: the event bus (anything with ``consumer`` and ``end_offset``), or None to skip it.
        journal: the decision journal's folder, or None to skip it.
        batch: events per :meth:`~serve.pipeline.ScoringPipeline.warm` call.
        progress: called with a line now and then, and with the summary at the end.
        clock: seconds, for the timings.
    """
    summary = WarmSummary()
    started = clock()
    if bus is not None:
        total = bus.end_offset(EVENTS_TOPIC)
        if total:
            with bus.consumer(EVENTS_TOPIC, GROUP) as consumer:
                consumer.seek(0)
                next_report = PROGRESS_EVERY
                while records := consumer.poll(batch):
                    summary.transactions += pipeline.warm(
                        [decode_event(r.payload) for r in records]
                    )
                    summary.bus_events += len(records)
                    if progress is not None and summary.bus_events >= next_report:
                        next_report += PROGRESS_EVERY
                        progress(
                            f"warm start: {summary.bus_events:,} of {total:,} bus events "
                            f"({clock() - started:.1f} s)"
                        )
    if journal is not None:
        for lines in read_journal(journal, batch=batch):
            summary.transactions += pipeline.warm([line.decoded_event() for line in lines])
            decisions = [line.to_decision() for line in lines]
            pipeline.remember(decisions)
            summary.journal_records += len(lines)
            summary.remembered += len(decisions)
    summary.seconds = clock() - started
    if progress is not None:
        progress(summary.line())
    return summary
