"""The feature stage in a child process: features and decisions on two cores.

Most of the scoring pipeline's time goes to the feature state (:class:`gnn.features.
FeatureState` and its ring detector), which must see every event, one at a time, in order.
:class:`FeatureWorker` runs that state in a child process: the pipeline sends it a
micro-batch of events and, while the child computes their feature rows, decides the batches
the child has answered (:meth:`serve.pipeline.ScoringPipeline.begin` and ``finish``). The child
is fed exactly what the in-process state would be fed, in the same order, so the rows are the
same; the rings it reports for a batch are read after the whole batch, as the in-process
pipeline reads them when it decides.

Requests and answers go over two pipes, one each way, as length-prefixed frames. A batch of
events travels as JSON, the bus's encoding (:func:`ingest.events.encode_events`; a quarter of a
microsecond an event to write, against three to pickle; JSON keeps a timestamp's UTC offset,
which MessagePack's timestamps drop); answers are pickled, a batch's rows as two stacked arrays.
Neither side waits for the other to make room: what the pipe takes is written at once, by the
caller, and what it does not (a batch larger than the pipe while the child is busy) is left to a
thread of the writer's (:class:`_Writer`). The parent reads answers as their bytes arrive, from
its event loop when it has one (:meth:`FeatureWorker.fileno`, :meth:`FeatureWorker.ready`), so
the loop never waits for the child. Replies come back in the order the requests were sent; a
ring lookup (:meth:`~FeatureWorker.ring_of`, :meth:`~FeatureWorker.ring`) asked while a batch is
in flight waits behind it.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import pickle
import select
import struct
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from gnn.features import FeatureState, TxnRow
from ingest.events import decode_events, encode_events
from serve.heap import HEAP, settle_heap

_EVENTS: Final = b"e"
"""The first byte of a batch of events (other requests are pickled tuples: ``0x80``)."""
_FRAME: Final = struct.Struct("!Q")
"""A frame's header: its payload's length."""
_PIPE_BYTES: Final = 1 << 20
"""Asked of each pipe (Linux's default limit for an unprivileged process; 64 KiB otherwise)."""


class FeatureWorkerError(RuntimeError):
    """The feature process failed or went away."""


Observed = tuple[list[TxnRow | None], dict[str, Any]]
"""Per event, its feature row (None for non-transactions); and the rings of the batch's
accounts and payees, by account id (None when in no ring), read after the batch."""


def _own(conn: Any) -> int:
    """A connection's descriptor, ours to keep (the connection is closed)."""
    fd = os.dup(conn.fileno())
    conn.close()
    return fd


def _widen(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


class _Writer:
    """Frames written to a pipe in order, without the caller waiting for the reader.

    :meth:`send` writes what the pipe takes now; the rest of the frame, and every frame after it
    until the backlog is gone, is written by a thread that waits for room.
    """

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        os.set_blocking(fd, False)
        _widen(fd)
        self._lock = threading.Lock()
        self._backlog: deque[memoryview | None] = deque()
        self._more = threading.Condition(self._lock)
        self.broken: OSError | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True, name=name)
        self._thread.start()

    def send(self, payload: bytes) -> None:
        """Write one frame (raises the error that ended the pipe, once the reader is gone)."""
        frame = _FRAME.pack(len(payload)) + payload
        with self._lock:
            if self.broken is not None:
                raise self.broken
            sent = 0
            if not self._backlog:
                with contextlib.suppress(BlockingIOError):
                    sent = os.write(self._fd, frame)
                if sent == len(frame):
                    return
            self._backlog.append(memoryview(frame)[sent:])
            self._more.notify()

    def close(self) -> None:
        """Stop the thread once the backlog is written (or the pipe is gone); close the pipe."""
        with self._lock:
            self._backlog.append(None)
            self._more.notify()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _drain(self) -> None:
        poll = select.poll()
        poll.register(self._fd, select.POLLOUT)
        while True:
            with self._lock:
                while not self._backlog:
                    self._more.wait()
                frame = self._backlog[0]
            if frame is None:
                return
            try:
                while frame:
                    poll.poll()
                    with contextlib.suppress(BlockingIOError):
                        frame = frame[os.write(self._fd, frame) :]
            except OSError as exc:
                with self._lock:
                    self.broken = exc
                    self._backlog.clear()
                return
            with self._lock:
                self._backlog.popleft()


class _Reader:
    """Frames read from a pipe as their bytes arrive, never waiting unless asked to."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        _widen(fd)
        self._buf = bytearray()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self.closed = False

    def take(self) -> list[bytes]:
        """The frames complete now (reading what the pipe holds)."""
        try:
            while chunk := os.read(self.fd, _PIPE_BYTES):
                self._buf += chunk
            self.closed = True  # end of file: the writer is gone
        except BlockingIOError:
            pass
        frames = []
        buf, at = self._buf, 0
        while len(buf) - at >= _FRAME.size:
            (size,) = _FRAME.unpack_from(buf, at)
            end = at + _FRAME.size + size
            if end > len(buf):
                break
            frames.append(bytes(buf[at + _FRAME.size : end]))
            at = end
        if at:
            del buf[:at]
        return frames

    def wait(self) -> list[bytes]:
        """The next complete frames, waiting for them (none: the writer is gone)."""
        while not (frames := self.take()) and not self.closed:
            self._poll.poll()
        return frames

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _serve(requests: Any, answers: Any, ring_every: int) -> None:  # pragma: no cover - the child
    state = FeatureState(ring_every=ring_every)
    # this process's heap is the feature state: settled from the start, as it grows (otherwise
    # each full collection walks all of it, a pause of a second and more in a long run)
    settle_heap()
    inbox = _Reader(_own(requests))
    out = _Writer(_own(answers), "answers")
    while True:
        frames = inbox.wait()
        if not frames:  # the parent is gone
            return
        for raw in frames:
            try:
                if raw[:1] == _EVENTS:
                    reply: Any = _observe(state, decode_events(memoryview(raw)[1:]))
                else:
                    kind, arg = pickle.loads(raw)  # noqa: S301 - our own parent, a private pipe
                    if kind == "ring_of":
                        reply = state.ring_of(arg)
                    elif kind == "ring":
                        reply = state.ring(arg)
                    elif kind == "stop":
                        out.send(pickle.dumps(("ok", None), 5))
                        out.close()
                        return
                    else:
                        raise ValueError(f"unknown request {kind!r}")
                answer = pickle.dumps(("ok", reply), 5)
            except Exception as exc:
                answer = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"), 5)
            try:
                out.send(answer)
            except OSError:
                return


def _observe(state: FeatureState, events: list[Any]) -> tuple[Any, ...]:
    rows = [state.observe(e) for e in events]
    HEAP.grew(len(events))
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
        their_requests, my_requests = ctx.Pipe(duplex=False)
        my_answers, their_answers = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_serve,
            args=(their_requests, their_answers, ring_every),
            daemon=True,
            name="ringfence-features",
        )
        self._proc.start()
        their_requests.close()
        their_answers.close()
        self._lock = threading.Lock()
        self._out = _Writer(_own(my_requests), "ringfence-features-requests")
        self._in = _Reader(_own(my_answers))
        self._sent = 0
        self._read = 0
        self._replies: dict[int, tuple[str, Any]] = {}

    def submit(self, events: Sequence[Any]) -> int:
        """Send a batch of events; returns its ticket for :meth:`collect`."""
        return self._post(_EVENTS + encode_events(events))

    def collect(self, ticket: int, n: int) -> Observed:
        """The rows of the batch ``ticket`` (``n`` events), waiting for them if need be."""
        at, txn_ids, ts, x, entities, entity_x, rings = self._wait(ticket)
        rows: list[TxnRow | None] = [None] * n
        for k, i in enumerate(at):
            rows[i] = TxnRow(txn_ids[k], ts[k], x[k], entities[k], entity_x[k])
        return rows, rings

    def fileno(self) -> int:
        """A descriptor readable when answer bytes arrive, for an event loop to watch.

        :meth:`ready` reads them and says whether an answer is complete.
        """
        return self._in.fd

    def ready(self, ticket: int) -> bool:
        """Whether the answer to ``ticket`` is in (reading what has arrived; never waits)."""
        with self._lock:
            self._file(self._in.take())
            return ticket in self._replies or self._in.closed

    @property
    def alive(self) -> bool:
        """Whether the child is running (scoring fails without it: its state is the features)."""
        return self._proc.is_alive() and not self._in.closed

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
        self._out.close()
        self._in.close()

    def _send(self, kind: str, arg: Any) -> int:
        return self._post(pickle.dumps((kind, arg), 5))

    def _post(self, request: bytes) -> int:
        with self._lock:
            try:
                self._out.send(request)
            except OSError as exc:
                raise self._gone(exc) from None
            self._sent += 1
            return self._sent

    def _file(self, frames: list[bytes]) -> None:
        for raw in frames:
            self._read += 1
            self._replies[self._read] = pickle.loads(raw)  # noqa: S301 - our own child

    def _wait(self, ticket: int) -> Any:
        with self._lock:
            while ticket not in self._replies:
                if self._in.closed:
                    raise self._gone(EOFError("no more answers"))
                self._file(self._in.wait())
            status, reply = self._replies.pop(ticket)
        if status != "ok":
            raise FeatureWorkerError(f"the feature process failed: {reply}")
        return reply

    def _gone(self, exc: BaseException) -> FeatureWorkerError:
        self._proc.join(1)
        code = self._proc.exitcode
        return FeatureWorkerError(f"the feature process is gone (exit code {code}): {exc!r}")
