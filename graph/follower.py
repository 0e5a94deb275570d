"""Keeps the entity graph and the ring detector current with the event bus.

The follower reads the ``events`` topic from where it last stopped, applies each batch to the
graph store and the ring detector, and saves both together with the bus offset they reflect. The
offset lives inside the saved state, not in a separate commit, so a crash between saving and
committing can never apply an event twice (edge counts and sums would drift) or skip one.

State folder (``<data dir>/graph``)::

    state.json                 {"version": 1, "offset": N, "events": E}
    store-<N>.snap             the embedded graph store at offset N
    rings-<N>.snap             the ring detector at offset N

``state.json`` is written last (atomically); older snapshots are removed after it.

A **mirror** (the Neo4j store, when one is configured) is the system of record that the
embedded state writes behind to. It keeps its own checkpoint, moved in the same transaction as
each batch it applies (``upsert_through``), so it too applies every event exactly once, and a
mirror that was down or wiped catches up from its own checkpoint while the embedded state goes
on from its own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from graph.embedded import EmbeddedGraphStore
from graph.model import EdgeUpdate, edges_from_event
from graph.rings import RingConfig, RingDetector
from ingest.events import decode_event

STATE_VERSION = 1


class Mirror(Protocol):
    """What the follower needs of a system-of-record graph store."""

    def checkpoint(self, stream: str) -> int:
        """The bus offset the store reflects for ``stream``."""
        ...

    def upsert_through(
        self, updates: list[EdgeUpdate], *, stream: str, expected: int, offset: int
    ) -> int:
        """Apply ``updates`` and move the checkpoint from ``expected`` to ``offset`` at once."""
        ...


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class GraphFollower:
    """The graph store and ring detector, following a bus topic.

    Args:
        root: the state folder.
        bus: the event bus (anything with ``consumer(topic, group)``).
        topic: the topic accepted events are on.
        config: ring detection settings.
        mirror: a system-of-record store written behind to (see the module docstring).
    """

    GROUP = "graph"

    def __init__(
        self,
        root: Path,
        bus: Any,
        *,
        topic: str = "events",
        config: RingConfig | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._bus = bus
        self._topic = topic
        self.mirror = mirror
        self.offset = 0
        self.events = 0
        state_path = root / "state.json"
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"{state_path}: unsupported state version {state.get('version')}")
            self.offset = int(state["offset"])
            self.events = int(state["events"])
            self.store = EmbeddedGraphStore.restore(root / f"store-{self.offset}.snap")
            self.detector = RingDetector.restore((root / f"rings-{self.offset}.snap").read_bytes())
        else:
            self.store = EmbeddedGraphStore()
            self.detector = RingDetector(config or RingConfig())

    def catch_up(
        self, *, batch_size: int = 5000, progress: Callable[[str], None] | None = None
    ) -> int:
        """Apply every event on the bus past the saved offset, then save; returns how many.

        With a mirror, events past the mirror's own checkpoint are written to it too.
        """
        consumer = self._bus.consumer(self._topic, self.GROUP)
        applied = 0
        started = time.perf_counter()
        mirrored = self.mirror.checkpoint(self.GROUP) if self.mirror is not None else None
        try:
            consumer.seek(self.offset if mirrored is None else min(self.offset, mirrored))
            while True:
                records = consumer.poll(batch_size)
                if not records:
                    break
                end = records[-1].offset + 1
                per_record = [
                    (r.offset, edges_from_event(decode_event(r.payload))) for r in records
                ]
                if self.mirror is not None and mirrored is not None and end > mirrored:
                    behind = [u for o, us in per_record if o >= mirrored for u in us]
                    self.mirror.upsert_through(
                        behind, stream=self.GROUP, expected=mirrored, offset=end
                    )
                    mirrored = end
                if end > self.offset:
                    updates = [u for o, us in per_record if o >= self.offset for u in us]
                    self.store.upsert(updates)
                    self.detector.update(updates)
                    applied += sum(1 for r in records if r.offset >= self.offset)
                    self.offset = end
                if progress is not None and applied % (batch_size * 20) < batch_size:
                    rate = applied / max(time.perf_counter() - started, 1e-9)
                    progress(f"graph: {applied:,} events applied ({rate:,.0f}/s)")
            if applied:
                self.events += applied
                self.save()
                consumer.commit(self.offset)
        finally:
            consumer.close()
        return applied

    def save(self) -> None:
        """Write the store and detector snapshots, then the state that names them."""
        self.store.snapshot(self.root / f"store-{self.offset}.snap")
        _atomic_write(self.root / f"rings-{self.offset}.snap", self.detector.snapshot())
        state = {"version": STATE_VERSION, "offset": self.offset, "events": self.events}
        _atomic_write(self.root / "state.json", json.dumps(state).encode())
        keep = {f"store-{self.offset}.snap", f"rings-{self.offset}.snap", "state.json"}
        for path in self.root.iterdir():
            if path.name not in keep and path.suffix == ".snap":
                path.unlink()
