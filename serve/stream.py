"""The stream consumer: the scoring pipeline on the event bus, exactly as the API uses it.

:class:`StreamScorer` reads the ``events`` topic in its own consumer group (``scoring``) in
micro-batches, runs each batch through :class:`serve.pipeline.ScoringPipeline`, appends every
new decision to ``decisions.jsonl`` (flushed and synced), and only then commits the offset.

All state is rebuilt from the last acknowledged position: on start, the records before the
committed offset are replayed into the pipeline to rebuild its feature and entity state
(their decisions were written before), and decisions already in the log are never written
twice, so a crash between writing and committing costs a replay, not a duplicate.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ingest.events import decode_event
from ingest.pipeline import EVENTS_TOPIC
from serve.heap import settle_heap
from serve.pipeline import ScoringPipeline

GROUP: Final = "scoring"


@dataclass(slots=True)
class StreamSummary:
    """What a run did."""

    rebuilt: int = 0
    consumed: int = 0
    transactions: int = 0
    written: int = 0
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "rebuilt_from_events": self.rebuilt,
            "events_consumed": self.consumed,
            "transactions_decided": self.transactions,
            "decisions_written": self.written,
            "offset": self.offset,
        }


class StreamScorer:
    """Scores what arrives on the bus.

    Args:
        bus: the event bus (anything with ``consumer(topic, group)``).
        pipeline: the scoring pipeline (fresh: its state is rebuilt here).
        out: the decision log (JSON lines).
        batch: records per poll.
    """

    def __init__(
        self, bus: Any, pipeline: ScoringPipeline, out: Path, *, batch: int = 1000
    ) -> None:
        self.bus = bus
        self.pipeline = pipeline
        self.out = out
        self.batch = batch

    def run(self, *, follow: bool = False, idle: Callable[[], bool] | None = None) -> StreamSummary:
        """Consume until the topic is drained (or, with ``follow``, until ``idle()`` is true)."""
        summary = StreamSummary()
        written: set[str] = set()
        if self.out.exists():
            with self.out.open(encoding="utf-8") as fh:
                written.update(json.loads(line)["txn_id"] for line in fh if line.strip())
        self.out.parent.mkdir(parents=True, exist_ok=True)
        consumer = self.bus.consumer(EVENTS_TOPIC, GROUP)
        try:
            committed = consumer.committed
            if committed:
                # state only: blocks and alerts of these records were made the first time
                consumer.seek(0)
                while summary.rebuilt < committed:
                    records = consumer.poll(min(self.batch, committed - summary.rebuilt))
                    if not records:
                        break
                    self.pipeline.warm([decode_event(r.payload) for r in records])
                    summary.rebuilt += len(records)
                settle_heap()
            with self.out.open("a", encoding="utf-8") as log:

                def settle(batch: Any, records: list[Any]) -> None:
                    """Decide a begun batch, log its decisions, then commit its records."""
                    for d in self.pipeline.finish(batch):
                        summary.transactions += 1
                        if d.txn_id in written:
                            continue
                        written.add(d.txn_id)
                        row = d.to_dict()
                        row.pop("rules", None)
                        if d.shadow_decision is not None and self.pipeline.shadow is not None:
                            row["shadow_ruleset_version"] = self.pipeline.shadow.version
                        row["offset_before"] = records[-1].offset + 1
                        log.write(json.dumps(row) + "\n")
                        summary.written += 1
                    log.flush()
                    os.fsync(log.fileno())
                    consumer.commit(records[-1].offset + 1)
                    summary.consumed += len(records)

                # one batch in flight: the next is begun (with a feature worker, its features
                # are computed in the worker's process) before the one before is decided
                flying: tuple[Any, list[Any]] | None = None
                while True:
                    records = consumer.poll(self.batch)
                    if not records:
                        if flying is not None:
                            settle(*flying)
                            flying = None
                        if follow and (idle is None or not idle()):
                            time.sleep(0.05)
                            continue
                        break
                    begun = self.pipeline.begin([decode_event(r.payload) for r in records])
                    if flying is not None:
                        settle(*flying)
                    flying = (begun, records)
            summary.offset = consumer.committed
        finally:
            consumer.close()
        return summary
