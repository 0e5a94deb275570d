"""The decision journal: an append-only log of every transaction the API decided.

One JSON line per transaction, written through the pipeline's ``on_decisions`` hook::

    {"at": 1767225600123, "shadow_ruleset_version": "2" | null,
     "decision": {... Decision.to_dict() ...}, "event": {... the canonical event ...}}

``decision`` is what the API answered (score, decision, reasons, rules that fired, the live
rule-set version and the shadow decision); ``event`` is the transaction as
:func:`ingest.events.encode_event` writes it, so a restart can fold it back into the state.

Layout under the journal's folder (``<data-dir>/journal``)::

    000000000000.jsonl   segment 0: records in the order they were decided
    000000000001.jsonl   the next segment, begun once the previous one passed the size limit
    writer.lock          flock held by the one process writing; holds its pid

Durability (a group commit): each batch is one ``write`` into the segment before the
pipeline answers, so a crash of the process loses nothing; a background thread syncs the
segment (``fdatasync``) every ``sync_ms`` milliseconds when something was written, so a power
cut or kernel crash loses at most the records decided in the last ``sync_ms`` (plus the time
one sync takes), some of which may already have been answered. A full segment is synced by
the same thread, before its successor's name is; :meth:`DecisionJournal.close` syncs
everything. Nothing on the request path waits for the disk.

A crash can leave a torn last line; the writer cuts it off when it opens (with a warning), and
readers skip it, and any other line that does not parse, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import msgspec
import orjson

from ingest.errors import RingfenceError
from ingest.events import decode_event, encode_event
from rules.evaluate import Outcome
from serve.pipeline import Decision, DecisionHook

_log = logging.getLogger(__name__)

MiB: Final = 1024 * 1024
DEFAULT_SYNC_MS: Final = 50.0
DEFAULT_SEGMENT_BYTES: Final = 64 * MiB
MIN_SEGMENT_BYTES: Final = 1024
_SEGMENT: Final = re.compile(r"(\d{12})\.jsonl")
_LOCK: Final = "writer.lock"


class JournalLine(msgspec.Struct, frozen=True):
    """One record as stored; the event is kept as raw JSON until it is asked for."""

    decision: dict[str, Any]
    event: msgspec.Raw
    at: int = 0
    shadow_ruleset_version: str | None = None

    def decoded_event(self) -> Any:
        """The canonical event (as :func:`ingest.events.decode_event` gives it)."""
        return decode_event(bytes(self.event))

    def to_decision(self) -> Decision:
        """The decision as the pipeline held it (``replayed`` false)."""
        return decision_from_dict(self.decision)


_LINE_DECODER: Final = msgspec.json.Decoder(JournalLine)


def decision_from_dict(d: dict[str, Any]) -> Decision:
    """Inverse of :meth:`serve.pipeline.Decision.to_dict` (rules that did not fire are not kept).

    >>> d = Decision("t1", 0.25, "approve", (), "model", "v1")
    >>> decision_from_dict(d.to_dict()) == d
    True
    """
    return Decision(
        txn_id=d["txn_id"],
        score=float(d["score"]),
        decision=d["decision"],
        reasons=tuple(d.get("reasons") or ()),
        decided_by=d["decided_by"],
        model_version=d["model_version"],
        ring_id=d.get("ring_id"),
        replayed=False,
        ruleset_version=d.get("ruleset_version"),
        rule_outcomes=tuple(
            Outcome(r["rule_id"], r["result"], (), r.get("error")) for r in d.get("rules") or ()
        ),
        challenge_id=d.get("challenge_id"),
        shadow_decision=d.get("shadow_decision"),
    )


@dataclass(slots=True)
class JournalStats:
    """Counters of a writer since it opened."""

    records: int = 0
    batches: int = 0
    bytes: int = 0
    syncs: int = 0
    segments: int = 0
    write_errors: int = 0
    sync_errors: int = 0


class DecisionJournal:
    """The writer: appends records, syncs them in the background, rotates segments.

    Args:
        folder: the journal's folder (created if missing).
        sync_ms: the group-commit interval: how often written records are synced to disk.
        segment_bytes: the size past which a segment is closed and the next one begun.
        fsync: whether to sync at all (off: a process crash loses nothing, a power cut may).
        clock: milliseconds since the Unix epoch, for the records' ``at``.

    Raises:
        JournalLocked: another process writes to this journal.
    """

    def __init__(
        self,
        folder: Path | str,
        *,
        sync_ms: float = DEFAULT_SYNC_MS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if sync_ms <= 0:
            raise ValueError(f"sync_ms must be positive, got {sync_ms}")
        if segment_bytes < MIN_SEGMENT_BYTES:
            raise ValueError(f"segment_bytes must be at least {MIN_SEGMENT_BYTES}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sync_s = sync_ms / 1000.0
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.stats = JournalStats()
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._dirty = False
        self._retired: list[int] = []
        self._closed = False
        self._lock_fd = _take_lock(self.folder / _LOCK)
        try:
            segments = segment_numbers(self.folder)
            self._segment = segments[-1] if segments else 0
            path = self._path(self._segment)
            if path.exists():
                _repair_tail(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
            if not segments:
                _fsync_dir(self.folder)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync:
            self._syncer = threading.Thread(
                target=self._sync_loop, name="journal-sync", daemon=True
            )
            self._syncer.start()

    def __repr__(self) -> str:
        return f"DecisionJournal({str(self.folder)!r}, sync_ms={self.sync_s * 1000:g})"

    def append(
        self,
        events: Sequence[Any],
        decisions: Sequence[Decision],
        *,
        shadow_version: str | None = None,
    ) -> int:
        """Write one record per decision (its event found in ``events`` by ``txn_id``).

        One ``write`` for the batch; returns the records written. A failed write is logged
        and counted (``stats.write_errors``), never raised: scoring goes on without it.
        """
        if not decisions:
            return 0
        by_id: dict[str, Any] = {}
        for event in events:
            if event.event_type == "transaction":
                by_id.setdefault(event.txn_id, event)
        at = b'{"at":%d,"shadow_ruleset_version":' % self._clock()
        shadow = orjson.dumps(shadow_version)
        parts: list[bytes] = []
        n = 0
        for d in decisions:
            event = by_id.get(d.txn_id)
            if event is None:
                continue
            n += 1
            parts += (
                at,
                shadow if d.shadow_decision is not None else b"null",
                b',"decision":',
                orjson.dumps(d.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY),
                b',"event":',
                encode_event(event),
                b"}\n",
            )
        data = b"".join(parts)
        with self._lock:
            if self._closed:
                raise ValueError(f"the journal {self.folder} is closed")
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self.stats.write_errors += 1
                if self.stats.write_errors == 1 or self.stats.write_errors % 1000 == 0:
                    _log.error(
                        "journal %s: cannot write %d records (%d failures so far): %s",
                        self.folder,
                        n,
                        self.stats.write_errors,
                        exc,
                    )
                with contextlib.suppress(OSError):  # no half line for the next batch to follow
                    os.ftruncate(self._fd, self._size)
                return 0
            self._size += len(data)
            self._dirty = True
            self.stats.records += n
            self.stats.batches += 1
            self.stats.bytes += len(data)
            if self._size >= self.segment_bytes:
                self._roll()
        return n

    def hook(self, pipeline: Any = None) -> DecisionHook:
        """The pipeline's ``on_decisions`` hook writing here.

        With ``pipeline``, records carry the version of its shadow rule set (read in the
        pipeline's lock, so it is the set the batch was decided with).
        """

        def on_decisions(events: Sequence[Any], decisions: Sequence[Decision]) -> None:
            shadow = getattr(pipeline, "shadow", None) if pipeline is not None else None
            self.append(events, decisions, shadow_version=getattr(shadow, "version", None))

        return on_decisions

    def sync(self) -> None:
        """Sync what was written to disk now (and finish closing full segments)."""
        with self._lock:
            retired, self._retired = self._retired, []
            fd = -1
            if self._dirty and self._fd >= 0:
                self._dirty = False
                fd = os.dup(self._fd)
        try:
            for old in retired:  # full segments: their last records, then the new file's name
                try:
                    os.fdatasync(old)
                finally:
                    os.close(old)
            if retired:
                _fsync_dir(self.folder)
            if fd >= 0:
                os.fdatasync(fd)
            self.stats.syncs += 1
        except OSError as exc:
            with self._lock:
                self._dirty = True
            self.stats.sync_errors += 1
            _log.error("journal %s: sync failed: %s", self.folder, exc)
        finally:
            if fd >= 0:
                os.close(fd)

    def read(self, batch: int = 5000) -> Iterator[list[JournalLine]]:
        """The records written so far, in order, ``batch`` at a time (see :func:`read_journal`)."""
        return read_journal(self.folder, batch=batch)

    def close(self) -> None:
        """Stop the syncer, sync (unless ``fsync`` is off) and release the journal."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
        if self.fsync:
            self._dirty = True
            self.sync()
        for old in self._retired:  # only left when a sync failed
            os.close(old)
        os.close(self._fd)
        self._fd = -1
        os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_s):
            self.sync()

    def _roll(self) -> None:
        """Begin the next segment; called holding the lock.

        The full one is handed to the syncer, which syncs and closes it: the request path
        never waits for the disk, not even here.
        """
        if self.fsync:
            self._retired.append(self._fd)
        else:
            os.close(self._fd)
        self._segment += 1
        self._fd = os.open(self._path(self._segment), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = 0
        self.stats.segments += 1

    def _path(self, n: int) -> Path:
        return self.folder / f"{n:012d}.jsonl"


class JournalLocked(RingfenceError):
    """Another process holds the journal's writer lock."""


def segment_numbers(folder: Path) -> list[int]:
    """The journal's segments, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SEGMENT.fullmatch(p.name)))


def read_journal(folder: Path | str, *, batch: int = 5000) -> Iterator[list[JournalLine]]:
    """Every record of the journal in ``folder``, in order, in lists of up to ``batch``.

    Reads a line at a time (memory is bounded by ``batch``). A torn last line (no newline: the
    writer was cut off) and lines that do not parse are skipped with a warning.
    """
    root = Path(folder)
    out: list[JournalLine] = []
    for n in segment_numbers(root):
        path = root / f"{n:012d}.jsonl"
        with path.open("rb") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    _log.warning(
                        "journal %s: skipping a torn last line %d (%d bytes, no newline)",
                        path,
                        line_no,
                        len(line),
                    )
                    continue
                if not line.strip():
                    continue
                try:
                    out.append(_LINE_DECODER.decode(line))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    _log.warning("journal %s: skipping damaged line %d: %s", path, line_no, exc)
                    continue
                if len(out) >= batch:
                    yield out
                    out = []
    if out:
        yield out


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (what follows the last newline) off ``path``."""
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("r+b") as fh:
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - 64 * 1024)
            fh.seek(start)
            chunk = fh.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        if keep == size:
            return
        _log.warning(
            "journal %s: cutting off a torn last line (%d bytes after the last newline)",
            path,
            size - keep,
        )
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise JournalLocked(
            f"journal {path.parent}: another process (pid {holder}) is writing it; "
            "one `ringfence serve` per data directory"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


EXAMPLES: Final = 10


def shadow_report(
    journal: Path | None, stream_log: Path | None = None, *, examples: int = EXAMPLES
) -> dict[str, Any]:
    """Live against shadow decisions in the journal and the stream consumer's log.

    Counts each (live, shadow) pair over the records that carry a shadow decision, how many
    differ, the first ``examples`` that differ, and the rule-set versions seen. Records decided
    with no shadow set are counted in ``without_shadow``.
    """
    pairs: dict[tuple[str, str], int] = {}
    live_versions: dict[str, int] = {}
    shadow_versions: dict[str, int] = {}
    sources = {"journal": 0, "stream": 0}
    differ: list[dict[str, Any]] = []
    n_differ = 0
    without = 0

    def count(source: str, d: dict[str, Any], shadow_version: str | None) -> None:
        nonlocal n_differ, without
        sources[source] += 1
        version = d.get("ruleset_version")
        if version is not None:
            live_versions[version] = live_versions.get(version, 0) + 1
        shadow = d.get("shadow_decision")
        if shadow is None:
            without += 1
            return
        if shadow_version is not None:
            shadow_versions[shadow_version] = shadow_versions.get(shadow_version, 0) + 1
        live = d["decision"]
        pairs[(live, shadow)] = pairs.get((live, shadow), 0) + 1
        if live != shadow:
            n_differ += 1
            if len(differ) < examples:
                differ.append(
                    {
                        "txn_id": d["txn_id"],
                        "source": source,
                        "live": live,
                        "shadow": shadow,
                        "ruleset_version": version,
                        "shadow_ruleset_version": shadow_version,
                    }
                )

    if journal is not None:
        for lines in read_journal(journal):
            for line in lines:
                count("journal", line.decision, line.shadow_ruleset_version)
    if stream_log is not None and stream_log.is_file():
        with stream_log.open("rb") as fh:
            for line_no, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    row = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    _log.warning("%s: skipping damaged line %d", stream_log, line_no)
                    continue
                count("stream", row, row.get("shadow_ruleset_version"))
    compared = sum(pairs.values())
    return {
        "decisions": sources["journal"] + sources["stream"],
        "sources": sources,
        "compared": compared,
        "without_shadow": without,
        "differ": n_differ,
        "differ_share": n_differ / compared if compared else None,
        "pairs": [
            {"live": live, "shadow": shadow, "count": n}
            for (live, shadow), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "first_differing": differ,
        "live_versions": dict(sorted(live_versions.items())),
        "shadow_versions": dict(sorted(shadow_versions.items())),
    }
