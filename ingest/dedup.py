"""Ids already accepted, so a redelivered or re-ingested event is counted once.

The bus is the truth: every accepted event is on it. ``SeenIds`` keeps the ids in memory, a
file of ids for a fast start, and follows the bus as a consumer group whose committed offset is
the position the file covers. On open it replays whatever the bus holds past that position (an
ingest that crashed between appending and recording ids), so the two can never disagree for
long and no id is ever forgotten.

Keys are ``"<event_type>:<id>"``: a login and a transaction may share an id string.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ingest.events import ID_FIELD

GROUP = "ingest-dedup"


def dedup_key(record: dict[str, Any]) -> str:
    """The de-duplication key of an encoded event record."""
    event_type = record["event_type"]
    return f"{event_type}:{record[ID_FIELD[event_type]]}"


class SeenIds:
    """The set of accepted event keys, persisted beside the bus.

    Args:
        root: folder for the id file.
        bus: the bus whose topic it follows.
        topic: the topic accepted events are appended to.
    """

    def __init__(self, root: Path, bus: Any, topic: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / f"{topic}.ids"
        self.ids: set[str] = set()
        if self.path.exists():
            with self.path.open("r", encoding="utf-8") as fh:
                self.ids.update(line.rstrip("\n") for line in fh)
        self._consumer = bus.consumer(topic, GROUP)
        self._fh = self.path.open("a", encoding="utf-8")
        self._catch_up()

    def _catch_up(self) -> None:
        replayed: list[str] = []
        while True:
            records = self._consumer.poll(10_000)
            if not records:
                break
            replayed.extend(dedup_key(orjson.loads(r.payload)) for r in records)
        if replayed:
            self.add_many([k for k in replayed if k not in self.ids], self._consumer.position)

    def __contains__(self, key: str) -> bool:
        return key in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def add_many(self, keys: Iterable[str], covered_offset: int) -> None:
        """Record ``keys`` as accepted; the bus is known to hold them below ``covered_offset``."""
        keys = list(keys)
        self.ids.update(keys)
        self.persist(keys, covered_offset)

    def persist(self, keys: list[str], covered_offset: int) -> None:
        """Write ``keys`` (already in :attr:`ids`) to the id file; the bus holds them."""
        if keys:
            self._fh.write("\n".join(keys) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        self._consumer.seek(covered_offset)
        self._consumer.commit(covered_offset)

    def close(self) -> None:
        """Close the id file and the consumer."""
        self._fh.close()
        self._consumer.close()
