"""Labelled event histories for training and evaluation.

A data folder is what ``ringfence generate`` writes (or a bank's export laid out the same way):
sources described by ``sources.yaml`` and, for labels, ``truth/transactions.csv``
(``txn_id,is_fraud,typology,ring_id``). :func:`load_history` reads the sources through the
same ingest path production uses (mapping, validation, de-duplication, dead letters) into a
private bus under a scratch folder, reads the accepted events back and returns them in time
order, so a model is trained on exactly what the scoring pipeline would have seen.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.bus.embedded import EmbeddedBus
from ingest.deadletter import DeadLetterStore
from ingest.dedup import SeenIds
from ingest.errors import RingfenceError
from ingest.events import decode_event
from ingest.pipeline import EVENTS_TOPIC, ingest
from ingest.sources import autodetect
from ingest.validate import Validator


class DataError(RingfenceError, ValueError):
    """A data folder cannot be used for training or evaluation."""


@dataclass(frozen=True, slots=True)
class Label:
    """The truth about one transaction."""

    is_fraud: bool
    typology: str
    ring_id: str


@dataclass(slots=True)
class History:
    """Canonical events in time order, and the labels of the transactions among them."""

    events: list[Any]
    labels: dict[str, Label]
    received: int = 0
    rejected: int = 0
    duplicates: int = 0
    sources: list[str] = field(default_factory=list)


def event_time_key(event: Any) -> tuple[float, str]:
    """The order events are replayed in: time, then event id (a total, stable order)."""
    return (event.timestamp.timestamp(), event.event_id)


def load_labels(truth_dir: Path) -> dict[str, Label]:
    """``truth/transactions.csv`` as ``{txn_id: Label}``."""
    path = truth_dir / "transactions.csv"
    if not path.is_file():
        raise DataError(f"labels: {path} not found (expected txn_id,is_fraud,typology,ring_id)")
    out: dict[str, Label] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"txn_id", "is_fraud"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"labels: {path} lacks the columns {sorted(missing)}")
        for row in reader:
            flag = row["is_fraud"].strip().lower()
            if flag not in ("0", "1", "true", "false"):
                raise DataError(
                    f"labels: is_fraud of {row['txn_id']!r} is {row['is_fraud']!r}, not 0/1"
                )
            out[row["txn_id"]] = Label(
                flag in ("1", "true"), row.get("typology") or "", row.get("ring_id") or ""
            )
    return out


def load_history(
    data_dir: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    validator: Validator | None = None,
) -> History:
    """Ingest a data folder into a scratch bus and return its events in time order.

    Args:
        data_dir: a folder with ``sources.yaml`` (or sources ingest can detect) and ``truth/``.
        progress: called with a line now and then.
        validator: the validator to use (default: the production one, clock now).

    Raises:
        DataError: the folder has no sources or no labels.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data: {root} is not a folder")
    labels = load_labels(root / "truth")
    try:
        specs = autodetect(root)
    except RingfenceError as exc:
        raise DataError(f"data: {root}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="ringfence-history-") as scratch:
        work = Path(scratch)
        bus = EmbeddedBus(work / "bus", fsync=False)
        try:
            seen = SeenIds(work / "ingest", bus, EVENTS_TOPIC)
            dead = DeadLetterStore(work / "deadletter")
            try:
                summary = ingest(
                    specs,
                    bus=bus,
                    dead_letters=dead,
                    seen=seen,
                    validator=validator or Validator(),
                    check_expectations=False,
                    progress=progress,
                )
            finally:
                dead.close()
                seen.close()
            events: list[Any] = []
            consumer = bus.consumer(EVENTS_TOPIC, "history")
            try:
                while records := consumer.poll(20_000):
                    events.extend(decode_event(r.payload) for r in records)
            finally:
                consumer.close()
        finally:
            bus.close()
    events.sort(key=event_time_key)
    totals = summary.totals()
    if progress:
        progress(f"history: {len(events):,} events from {len(specs)} sources")
    return History(
        events=events,
        labels=labels,
        received=totals.received,
        rejected=totals.rejected,
        duplicates=totals.duplicates,
        sources=[s.name for s in specs],
    )
