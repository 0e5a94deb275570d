"""The feature stage in a child process: features and decisions on two cores.

Most of the scoring pipeline's time goes to the feature state (:class:`gnn.features.
FeatureState` and its ring detector), which must see every event, one at a time, in order.
:class:`FeatureWorker` runs that state in a child process: the pipeline sends it a
micro-batch of events and, while the child computes their feature rows, decides the batch
before it (:meth:`serve.pipeline.ScoringPipeline.begin` and ``finish``). The child is fed
exactly what the in-process state would be fed, in the same order, so the rows are the same;
the rings it reports for a batch are read after the whole batch, as the in-process pipeline
reads them when it decides.

Messages go over a pipe. A batch of events travels as JSON, the bus's encoding (msgspec: a
quarter of a microsecond an event to write, against three to pickle; JSON keeps a timestamp's
UTC offset, which MessagePack's timestamps drop), written by a thread of the parent so
that neither the caller nor the event loop waits for the child to make room; the answers are
pickled, a batch's rows as two stacked arrays. Replies come back in the order the requests were
sent; a ring lookup (:meth:`ring_of`, :meth:`ring`) asked while a batch is in flight waits
behind it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import threading
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from gnn.features import FeatureState, TxnRow
from ingest.events import Event

_EVENTS = b"e"
"""The first byte of a batch of events (other requests are pickled tuples: ``0x80``)."""
_ENCODE_EVENTS = msgspec.json.Encoder()
_DECODE_EVENTS = msgspec.json.Decoder(list[Event])  # type: ignore[valid-type]


class FeatureWorkerError(RuntimeError):
    """The feature process failed or went away."""


Observed = tuple[list[TxnRow | None], dict[str, Any]]
"""Per event, its feature row (None for non-transactions); and the rings of the batch's
accounts and payees, by account id (None when in no ring), read after the batch."""


def _serve(conn: Any, bell: Any, ring_every: int) -> None:  # pragma: no cover - the child
    state = FeatureState(ring_every=ring_every)
    # one thread: the parent writes requests from a thread of its own and reads answers from
    # its event loop, so a child blocked writing a large answer is always read in the end
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            if raw[:1] == _EVENTS:
                reply: Any = _observe(state, _DECODE_EVENTS.decode(memoryview(raw)[1:]))
            else:
                kind, arg = pickle.loads(raw)  # noqa: S301 - our own parent, a private pipe
                # the bell rings before the answer is written: a large answer fills the pipe,
                # and the parent reads it only once it knows one is coming
                if kind == "ring_of":
                    reply = state.ring_of(arg)
                elif kind == "ring":
                    reply = state.ring(arg)
                elif kind == "stop":
                    conn.send_bytes(pickle.dumps(("ok", None), 5))
                    return
                else:
                    raise ValueError(f"unknown request {kind!r}")
            answer = pickle.dumps(("ok", reply), 5)
        except Exception as exc:
            answer = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"), 5)
        os.write(bell.fileno(), b"!")
        conn.send_bytes(answer)


def _observe(state: FeatureState, events: list[Any]) -> tuple[Any, ...]:
    rows = [state.observe(e) for e in events]
    at = [i for i, r in enumerate(rows) if r is not None]
    got = [rows[i] for i in at]
    rings = state.rings_of(got)
    if not got:
        return at, [], [], None, [], None, rings
    return (
        at,
        [r.txn_id for r in got],  # type: ignore[union-attr]
        [r.ts for r in got],  # type: ignore[union-attr]
        np.stack([r.x for r in got]),  # type: ignore[union-attr]
        [r.entities for r in got],  # type: ignore[union-attr]
        np.stack([r.entity_x for r in got]),  # type: ignore[union-attr]
        rings,
    )


class FeatureWorker:
    """A :class:`gnn.features.FeatureState` in a child process.

    Args:
        ring_every: as :class:`~gnn.features.FeatureState` (events between ring updates).
    """

    def __init__(self, *, ring_every: int = 2000) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process holding torch's threads
        self._conn, theirs = ctx.Pipe()
        self._bell, bell = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_serve, args=(theirs, bell, ring_every), daemon=True, name="ringfence-features"
        )
        self._proc.start()
        theirs.close()
        bell.close()
        os.set_blocking(self._bell.fileno(), False)  # drained by ready(), never waited on
        self._lock = threading.Lock()
        self._sent = 0
        self._read = 0
        self._replies: dict[int, tuple[str, Any]] = {}
        self._rung = 0
        # requests are written by a thread: a batch is larger than the pipe holds, and the child
        # reads it only once it has finished the batch before, which the caller must not wait for
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, daemon=True, name="ringfence-features-writer"
        )
        self._writer.start()

    def submit(self, events: Sequence[Any]) -> int:
        """Send a batch of events; returns its ticket for :meth:`collect`."""
        return self._post(_EVENTS + _ENCODE_EVENTS.encode(events))

    def collect(self, ticket: int, n: int) -> Observed:
        """The rows of the batch ``ticket`` (``n`` events), waiting for them if need be."""
        at, txn_ids, ts, x, entities, entity_x, rings = self._wait(ticket)
        rows: list[TxnRow | None] = [None] * n
        for k, i in enumerate(at):
            rows[i] = TxnRow(txn_ids[k], ts[k], x[k], entities[k], entity_x[k])
        return rows, rings

    def fileno(self) -> int:
        """A descriptor readable when answers are waiting, for an event loop to watch.

        It is a pipe of its own (an event loop makes what it watches non-blocking, which the
        answers' pipe must not be); :meth:`ready` clears it and says whether the oldest
        answer not yet read is in.
        """
        return self._bell.fileno()

    def ready(self, ticket: int) -> bool:
        """Whether the answer to ``ticket`` (the oldest not collected) is on its way.

        The child rings once per answer, just before writing it: an answer announced and not
        yet read is being written now, so reading it waits only for the pipe.
        """
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while rung := os.read(self._bell.fileno(), 65536):
                self._rung += len(rung)
        with self._lock:
            return ticket in self._replies or self._rung > self._read

    def ring_of(self, account_id: str) -> Any:
        """The ring the child's detector puts ``account_id`` in now (after what was sent)."""
        return self._wait(self._send("ring_of", account_id))

    def ring(self, ring_id: str) -> Any:
        """A ring by id, from the child's detector."""
        return self._wait(self._send("ring", ring_id))

    def close(self) -> None:
        """Stop the child (it exits with its parent too)."""
        if self._proc.is_alive():
            with contextlib.suppress(FeatureWorkerError):
                self._wait(self._send("stop", None))
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
        self._outbox.put(None)
        self._writer.join(5)
        self._conn.close()
        self._bell.close()

    def _send(self, kind: str, arg: Any) -> int:
        return self._post(pickle.dumps((kind, arg), 5))

    def _post(self, request: bytes) -> int:
        with self._lock:
            if not self._proc.is_alive():
                code = self._proc.exitcode
                raise FeatureWorkerError(f"the feature process is gone (exit code {code})")
            self._outbox.put(request)
            self._sent += 1
            return self._sent

    def _write_loop(self) -> None:
        while (request := self._outbox.get()) is not None:
            try:
                self._conn.send_bytes(request)
            except OSError:  # the child is gone: waiting for its answers says so
                return

    def _wait(self, ticket: int) -> Any:
        with self._lock:
            while ticket not in self._replies:
                try:
                    raw = self._conn.recv_bytes()
                except (EOFError, OSError) as exc:
                    code = self._proc.exitcode
                    raise FeatureWorkerError(
                        f"the feature process is gone (exit code {code}): {exc!r}"
                    ) from None
                self._read += 1
                self._replies[self._read] = pickle.loads(raw)  # noqa: S301 - our own child
            status, reply = self._replies.pop(ticket)
        if status != "ok":
            raise FeatureWorkerError(f"the feature process failed: {reply}")
        return reply
