"""The embedded bus: a durable append-only log on local disk, with consumer-group offsets.

Layout under the bus's root folder::

    <topic>/
        00000000000000000000.log    segment: frames of records, named by its first offset
        00000000000000000000.idx    sparse offset index of that segment (rebuilt when missing)
        00000000000000052113.log    the next segment, begun once the previous one is full
        ...
        writer.lock                 flock held by the one process appending; holds its pid
        groups/<group>.json         {"offset": N}: the group's committed offset
        groups/<group>.lock         flock held by the group's open consumer

Frames and index entries are described in :mod:`ingest.bus._format`.

Guarantees:

* One process appends to a topic at a time: the first :meth:`EmbeddedBus.append` takes an
  exclusive ``flock`` on ``writer.lock`` and keeps it until :meth:`EmbeddedBus.close`; another
  writer gets a :class:`~ingest.errors.BusError` naming the holder's pid.
* A batch is one ``write`` call, then ``fdatasync`` (with ``fsync=True``), so it is durable when
  ``append`` returns. A crash mid-append leaves a *torn tail*: an incomplete frame, or damaged
  frames with nothing good after them. The next writer truncates it before appending; readers
  treat it as the end of the log meanwhile. Damage with good records after it is corruption:
  reading it raises :class:`~ingest.errors.BusCorrupted`, never skips it.
* Any number of consumers, in any process, read while the writer appends. They return only
  complete frames whose length, CRC and offset check out.
* A committed offset is written to a temporary file, fsynced, renamed over the old one and the
  folder fsynced, so after a crash a group's offset is either the old or the new one.

With ``fsync=False`` the same holds across a crash of the process but not of the machine.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from ingest.bus._format import (
    END,
    HEAD_SIZE,
    INVALID,
    LIMIT,
    PARTIAL,
    decode,
    encode_batch,
    frame_offset,
    index_bytes,
    index_entries,
    parse_index,
    scan,
    valid_frame_follows,
)
from ingest.bus.base import Record, check_batch, check_name
from ingest.errors import BusCorrupted, BusError

_log = logging.getLogger(__name__)

MiB: Final = 1024 * 1024
DEFAULT_SEGMENT_BYTES: Final = 64 * MiB
MIN_SEGMENT_BYTES: Final = 1024
MAX_SEGMENT_BYTES: Final = 1024 * MiB
READ_CHUNK: Final = 1 * MiB
"""Bytes a consumer reads from a segment at a time (more when one record is larger)."""

_LOG_SUFFIX: Final = ".log"
_INDEX_SUFFIX: Final = ".idx"
_WRITER_LOCK: Final = "writer.lock"
_GROUPS: Final = "groups"


def _default_clock() -> int:
    return time.time_ns() // 1_000_000


class EmbeddedBus:
    """A :class:`~ingest.bus.base.Bus` kept in a folder on local disk.

    Args:
        root: the folder holding one sub-folder per topic (created if missing).
        fsync: whether ``append`` and ``commit`` wait for the disk (``fdatasync``/``fsync``);
            without it they survive a process crash but not a power cut.
        segment_bytes: the size at which a topic's segment is closed and a new one begun (a
            batch is never split, so a segment can exceed it by one batch).
        clock: milliseconds since the Unix epoch, for record timestamps.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root, EmbeddedBus(root, fsync=False) as bus:
    ...     bus.append("payments", [b"a", b"b", b"c"], keys=["acct-1", None, "acct-2"])
    ...     consumer = bus.consumer("payments", "scoring")
    ...     [(r.offset, r.key, r.payload) for r in consumer.poll(2)]
    ...     consumer.commit()
    ...     consumer.committed, consumer.position, consumer.lag
    2
    [(0, 'acct-1', b'a'), (1, None, b'b')]
    (2, 2, 1)
    """

    def __init__(
        self,
        root: Path | str,
        *,
        fsync: bool = True,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if not MIN_SEGMENT_BYTES <= segment_bytes <= MAX_SEGMENT_BYTES:
            raise ValueError(
                f"segment_bytes must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, "
                f"got {segment_bytes}"
            )
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._clock = clock or _default_clock
        self._writers: dict[str, _Writer] = {}
        self._consumers: list[EmbeddedConsumer] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"EmbeddedBus({str(self._root)!r}, fsync={self._fsync}, "
            f"segment_bytes={self._segment_bytes})"
        )

    @property
    def root(self) -> Path:
        """The folder holding the topics."""
        return self._root

    def append(
        self,
        topic: str,
        payloads: Sequence[bytes],
        keys: Sequence[str | None] | None = None,
    ) -> int:
        """Append a batch to ``topic``; see :meth:`ingest.bus.base.Bus.append`.

        The first append to a topic takes its writer lock and repairs a torn tail.

        Raises:
            BusError: another process (or bus) is appending to the topic; the write failed.
            BusCorrupted: the topic's last segment is damaged before its tail.
        """
        check_name("topic", topic)
        check_batch(payloads, keys)
        if not payloads:
            return self.end_offset(topic) - 1
        with self._lock:
            self._check_open()
            writer = self._writers.get(topic)
            if writer is None:
                writer = _Writer(
                    topic,
                    self._root / topic,
                    fsync=self._fsync,
                    segment_bytes=self._segment_bytes,
                )
                self._writers[topic] = writer
            return writer.append(payloads, keys, self._clock())

    def consumer(self, topic: str, group: str) -> EmbeddedConsumer:
        """Open ``group``'s consumer of ``topic``; see :meth:`ingest.bus.base.Bus.consumer`."""
        check_name("topic", topic)
        check_name("group", group)
        with self._lock:
            self._check_open()
        consumer = EmbeddedConsumer(self, topic, group, self._root / topic, fsync=self._fsync)
        with self._lock:
            self._consumers.append(consumer)
        return consumer

    def end_offset(self, topic: str) -> int:
        """The number of records in ``topic`` (complete, undamaged ones as seen on disk)."""
        check_name("topic", topic)
        writer = self._writers.get(topic)
        if writer is not None:
            return writer.end_offset
        return _disk_end_offset(topic, self._root / topic)

    def verify(self, topic: str) -> int:
        """Read every frame of ``topic`` and check it; return the number of records.

        A torn tail (which the next writer will truncate) is accepted.

        Raises:
            BusCorrupted: a damaged frame with good ones after it, a damaged sealed segment, a
                gap or overlap between segments, or an index entry that points at no record.
        """
        check_name("topic", topic)
        directory = self._root / topic
        bases = _list_segments(directory)
        expected = bases[0] if bases else 0
        if bases and bases[0] != 0:
            raise BusCorrupted(f"topic {topic!r}: first segment starts at {bases[0]}, not 0")
        for i, base in enumerate(bases):
            path = _segment_path(directory, base)
            if base != expected:
                raise BusCorrupted(
                    f"topic {topic!r}: segment {path.name} starts at offset {base} but the "
                    f"previous one ends at {expected}"
                )
            data = path.read_bytes()
            starts, end, stop = scan(data, 0, base)
            if stop != END:
                last = i == len(bases) - 1
                if not last or (
                    stop == INVALID and valid_frame_follows(data, end, base + len(starts))
                ):
                    raise BusCorrupted(
                        f"topic {topic!r}: damaged record at offset {base + len(starts)} "
                        f"(byte {end} of {path.name})"
                    )
            index = _read_index(directory, base)
            if index is not None:
                where = dict(zip(starts, range(base, base + len(starts)), strict=True))
                for offset, position in zip(*index, strict=True):
                    if where.get(position) != offset:
                        raise BusCorrupted(
                            f"topic {topic!r}: index entry ({offset}, {position}) of "
                            f"{path.name} points at no such record"
                        )
            expected = base + len(starts)
        return expected

    def close(self) -> None:
        """Close every consumer this bus opened and release the topics' writer locks."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers, self._consumers = self._consumers, []
            writers, self._writers = self._writers, {}
        for consumer in consumers:
            consumer.close()
        for writer in writers.values():
            writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the bus is closed")

    def _forget(self, consumer: EmbeddedConsumer) -> None:
        with self._lock:
            if consumer in self._consumers:
                self._consumers.remove(consumer)


class EmbeddedConsumer:
    """A group's consumer of one topic of an :class:`EmbeddedBus`.

    Obtain one from :meth:`EmbeddedBus.consumer`; see :class:`ingest.bus.base.Consumer`. While
    it is open it holds the group's lock, so a group has one consumer at a time (a second one
    gets :class:`~ingest.errors.BusError`). If the committed offset is beyond the end of the
    topic (records lost in a power cut with ``fsync=False``), it starts at the end.
    """

    def __init__(
        self, bus: EmbeddedBus, topic: str, group: str, directory: Path, *, fsync: bool
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._fsync = fsync
        groups = directory / _GROUPS
        groups.mkdir(parents=True, exist_ok=True)
        self._offset_path = groups / f"{group}.json"
        self._lock_fd = _take_lock(
            groups / f"{group}.lock",
            f"group {group!r} of topic {topic!r} already has a consumer (one at a time)",
        )
        self._closed = False
        try:
            self._committed = _read_committed(self._offset_path)
            end = bus.end_offset(topic)
            if self._committed > end:
                _log.warning(
                    "group %r of topic %r committed offset %d but the topic ends at %d; "
                    "starting at the end",
                    group,
                    topic,
                    self._committed,
                    end,
                )
                self._committed = end
            self._cursor = _Cursor(topic, directory, self._committed)
        except BaseException:
            os.close(self._lock_fd)
            raise

    def __repr__(self) -> str:
        return (
            f"EmbeddedConsumer(topic={self._topic!r}, group={self._group!r}, "
            f"committed={self._committed}, position={self._cursor.offset})"
        )

    @property
    def topic(self) -> str:
        """The topic read."""
        return self._topic

    @property
    def group(self) -> str:
        """The group whose offset this consumer commits."""
        return self._group

    @property
    def committed(self) -> int:
        """The group's committed offset: the first record not yet acknowledged."""
        return self._committed

    @property
    def position(self) -> int:
        """The offset of the next record :meth:`poll` returns."""
        return self._cursor.offset

    @property
    def lag(self) -> int:
        """``end_offset - committed``: records the group has not acknowledged."""
        return self._bus.end_offset(self._topic) - self._committed

    def poll(self, max_records: int = 1000) -> list[Record]:
        """Return up to ``max_records`` complete records from :attr:`position` on; never waits.

        Raises:
            ValueError: ``max_records`` is below 1, or the consumer is closed.
            BusCorrupted: a damaged record with good ones after it.
        """
        self._check_open()
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        return self._cursor.read(max_records)

    def commit(self, next_offset: int | None = None) -> None:
        """Durably set the group's committed offset (by default to :attr:`position`).

        Raises:
            ValueError: ``next_offset`` is negative or beyond :attr:`position`.
            BusError: the offset file could not be written.
        """
        self._check_open()
        offset = self.position if next_offset is None else next_offset
        if not 0 <= offset <= self.position:
            raise ValueError(
                f"cannot commit offset {offset}: it must be between 0 and the position "
                f"{self.position}"
            )
        if offset == self._committed:
            return
        body = json.dumps({"offset": offset}).encode() + b"\n"
        try:
            _write_atomically(self._offset_path, body, fsync=self._fsync)
        except OSError as exc:
            raise BusError(
                f"cannot commit offset {offset} of group {self._group!r} on topic "
                f"{self._topic!r}: {exc}"
            ) from exc
        self._committed = offset

    def seek(self, offset: int) -> None:
        """Move :attr:`position` to ``offset``; the committed offset is unchanged.

        Raises:
            ValueError: ``offset`` is negative or beyond the topic's end offset.
        """
        self._check_open()
        end = self._bus.end_offset(self._topic)
        if not 0 <= offset <= end:
            raise ValueError(f"cannot seek to offset {offset}: the topic holds 0 to {end}")
        self._cursor.seek(offset)

    def close(self) -> None:
        """Release the group (nothing is committed) and the files read."""
        if self._closed:
            return
        self._closed = True
        self._cursor.close()
        os.close(self._lock_fd)
        self._bus._forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the consumer of group {self._group!r} is closed")


class _Writer:
    """The appending side of one topic: holds its lock, the last segment and its index."""

    def __init__(self, topic: str, directory: Path, *, fsync: bool, segment_bytes: int) -> None:
        self._topic = topic
        self._dir = directory
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._broken: str | None = None
        self._seg_fd = -1
        self._idx_fd = -1
        self._base = 0  # the last segment's first offset
        self._size = 0  # its size in bytes
        self._end = 0  # the next offset to append
        self._next_index = 0  # the position from which the next index entry is due
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _take_lock(
            directory / _WRITER_LOCK,
            f"topic {topic!r} already has a writer (one process appends at a time)",
        )
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    @property
    def end_offset(self) -> int:
        return self._end

    def append(
        self, payloads: Sequence[bytes], keys: Sequence[str | None] | None, timestamp_ms: int
    ) -> int:
        if self._broken is not None:
            raise BusError(f"topic {self._topic!r} cannot be appended to: {self._broken}")
        estimate = sum(map(len, payloads)) + HEAD_SIZE * len(payloads)
        if self._size > 0 and self._size + estimate > self._segment_bytes:
            self._roll()
        data, index, next_index = encode_batch(
            self._end, timestamp_ms, payloads, keys, self._size, self._next_index
        )
        try:
            _write_all(self._seg_fd, data)
        except OSError as exc:
            self._undo(exc)
            raise BusError(f"cannot append to topic {self._topic!r}: {exc}") from exc
        if self._fsync:
            try:
                os.fdatasync(self._seg_fd)
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages: no later
                # write can be trusted until the topic is reopened and its tail checked.
                self._undo(exc)
                self._broken = f"fsync failed ({exc}); reopen the bus"
                raise BusError(f"cannot append to topic {self._topic!r}: {exc}") from exc
        self._size += len(data)
        self._end += len(payloads)
        self._next_index = next_index
        if index and self._idx_fd >= 0:
            try:
                _write_all(self._idx_fd, index_bytes(index))
            except OSError as exc:  # the index is a hint; the next writer rebuilds it
                _log.warning(
                    "topic %r: index not written (%s); it will be rebuilt", self._topic, exc
                )
                os.close(self._idx_fd)
                self._idx_fd = -1
        return self._end - 1

    def close(self) -> None:
        for fd in (self._seg_fd, self._idx_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._seg_fd = self._idx_fd = self._lock_fd = -1

    def _undo(self, exc: OSError) -> None:
        try:
            os.ftruncate(self._seg_fd, self._size)
        except OSError:
            self._broken = f"a failed write ({exc}) could not be undone; reopen the bus"

    def _roll(self) -> None:
        os.close(self._seg_fd)
        if self._idx_fd >= 0:
            os.close(self._idx_fd)
        self._seg_fd = self._idx_fd = -1
        self._create_segment(self._end)

    def _create_segment(self, base: int) -> None:
        path = _segment_path(self._dir, base)
        try:
            self._seg_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            raise BusCorrupted(
                f"topic {self._topic!r}: segment {path.name} exists already"
            ) from None
        self._idx_fd = os.open(
            _index_path(self._dir, base), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644
        )
        if self._fsync:
            _fsync_dir(self._dir)
        self._base = base
        self._size = 0
        self._next_index = 0

    def _recover(self) -> None:
        """Find the end of the log, truncate a torn tail, and bring the indexes up to date."""
        bases = _list_segments(self._dir)
        if not bases:
            self._end = 0
            self._create_segment(0)
            return
        for base in bases[:-1]:
            if _read_index(self._dir, base) is None:
                _rebuild_index(self._topic, self._dir, base)
        last = bases[-1]
        if len(bases) > 1:
            previous = bases[-2]
            with _open_read(_segment_path(self._dir, previous)) as fd:
                tail = _scan_tail(self._dir, previous, fd)
            if tail.stop != END or tail.end_offset != last:
                raise BusCorrupted(
                    f"topic {self._topic!r}: segment {_segment_path(self._dir, previous).name} "
                    f"ends at offset {tail.end_offset} but the next one starts at {last}"
                )
        path = _segment_path(self._dir, last)
        self._seg_fd = os.open(path, os.O_RDWR | os.O_APPEND)
        tail = _scan_tail(self._dir, last, self._seg_fd)
        if tail.stop != END:
            bad = tail.end - tail.first_pos
            if tail.stop == INVALID and valid_frame_follows(tail.data, bad, tail.end_offset):
                raise BusCorrupted(
                    f"topic {self._topic!r}: damaged record at offset {tail.end_offset} (byte "
                    f"{tail.end} of {path.name}) with good records after it"
                )
            _log.warning(
                "topic %r: truncating a torn tail of %d bytes after offset %d in %s",
                self._topic,
                tail.first_pos + len(tail.data) - tail.end,
                tail.end_offset - 1,
                path.name,
            )
            os.ftruncate(self._seg_fd, tail.end)
            if self._fsync:
                os.fsync(self._seg_fd)
        self._base = last
        self._size = tail.end
        self._end = tail.end_offset
        # Index: the entries before the one the scan started from, then entries for the tail.
        old = _read_index(self._dir, last)
        kept = array("Q")
        if old is not None:
            for offset, position in zip(*old, strict=True):
                if position >= tail.first_pos:
                    break
                kept.append(offset)
                kept.append(position)
        fresh, self._next_index = index_entries(
            [tail.first_pos + s for s in tail.starts], tail.first_offset, tail.first_pos
        )
        kept.extend(fresh)
        wanted = index_bytes(kept)
        index_path = _index_path(self._dir, last)
        try:
            current = index_path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != wanted:
            _write_atomically(index_path, wanted, fsync=False)
        self._idx_fd = os.open(index_path, os.O_WRONLY | os.O_APPEND)


class _Cursor:
    """A read position in a topic's segments. Reads only: no locks, no writes."""

    def __init__(self, topic: str, directory: Path, offset: int) -> None:
        self._topic = topic
        self._dir = directory
        self._fd = -1  # the segment is opened at the first read
        self._base = -1
        self._offset = offset
        self._buf = b""
        self._buf_pos = 0  # segment position of self._buf[0]
        self._rel = 0  # index in self._buf of the next record's frame
        self._short = True  # the last read of self._buf reached the end of the file

    @property
    def offset(self) -> int:
        return self._offset

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._buf = b""

    def seek(self, offset: int) -> None:
        self.close()
        self._offset = offset
        self._open_at(offset)

    def read(self, limit: int) -> list[Record]:
        """Up to ``limit`` records from the current offset.

        Damage is raised as BusCorrupted once the good records before it have been returned.
        """
        out: list[Record] = []
        try:
            self._read_into(out, limit)
        except BusCorrupted:
            if not out:
                raise
        return out

    def _read_into(self, out: list[Record], limit: int) -> None:
        fresh = False  # self._buf was read at the current position, nothing consumed since
        rechecked = False  # a sealed segment's end was read again, nothing consumed since
        while len(out) < limit:
            if self._fd < 0 and not self._open_at(self._offset):
                break
            records, end, stop, need = decode(self._buf, self._rel, self._offset, limit - len(out))
            if records:
                out += records
                self._offset += len(records)
                self._rel = end
                fresh = rechecked = False
            if stop == LIMIT:
                break
            if not fresh or (not self._short and stop != INVALID):
                self._refill(max(READ_CHUNK, need))
                fresh = True
                continue
            # Read just now from here: nothing more is usable in this segment for now.
            if stop == END and self._offset != self._base and self._enter(self._offset):
                fresh = rechecked = False
                continue
            if not self._sealed():
                if stop == INVALID:
                    self._check_torn_tail()
                break
            # A later segment exists, so this one is complete: read its end once more, since
            # the writer may have finished it after our read.
            if rechecked:
                raise self._damage(stop)
            rechecked = True
            fresh = False

    def _open_at(self, offset: int) -> bool:
        """Open the segment holding ``offset`` and move to it; False if the topic is empty."""
        bases = _list_segments(self._dir)
        if not bases:
            if offset:
                raise BusCorrupted(f"topic {self._topic!r} has no segments, offset {offset} wanted")
            return False
        i = bisect_right(bases, offset) - 1
        if i < 0:
            raise BusCorrupted(
                f"topic {self._topic!r}: offset {offset} is before the first segment ({bases[0]})"
            )
        base = bases[i]
        fd = os.open(_segment_path(self._dir, base), os.O_RDONLY)
        start, position = base, 0
        index = _read_index(self._dir, base)
        if index is not None:
            start, position = _locate(fd, base, index, offset)
        self._use(fd, base, start, position)
        if start < offset:
            try:
                self._read_into([], offset - start)  # damage on the way raises, with its place
                if self._offset != offset:
                    raise BusCorrupted(
                        f"topic {self._topic!r}: cannot reach offset {offset}; the log stops at "
                        f"{self._offset}"
                    )
            except BaseException:
                self.close()  # stay at the offset asked for; the next read tries again
                self._offset = offset
                raise
        return True

    def _enter(self, base: int) -> bool:
        """Move to the start of the segment named ``base``, if there is one."""
        try:
            fd = os.open(_segment_path(self._dir, base), os.O_RDONLY)
        except FileNotFoundError:
            return False
        self._use(fd, base, base, 0)
        return True

    def _use(self, fd: int, base: int, offset: int, position: int) -> None:
        if self._fd >= 0 and self._fd != fd:
            os.close(self._fd)
        self._fd = fd
        self._base = base
        self._offset = offset
        self._buf = b""
        self._buf_pos = position
        self._rel = 0
        self._short = True

    def _refill(self, size: int) -> None:
        position = self._buf_pos + self._rel
        self._buf = os.pread(self._fd, size, position)
        self._buf_pos = position
        self._rel = 0
        self._short = len(self._buf) < size

    def _sealed(self) -> bool:
        bases = _list_segments(self._dir)
        return bool(bases) and bases[-1] > self._base

    def _check_torn_tail(self) -> None:
        position = self._buf_pos + self._rel
        rest = os.pread(self._fd, os.fstat(self._fd).st_size - position, position)
        if valid_frame_follows(rest, 0, self._offset):
            raise self._damage(INVALID)

    def _damage(self, stop: int) -> BusCorrupted:
        name = _segment_path(self._dir, self._base).name
        position = self._buf_pos + self._rel
        if stop == END:
            return BusCorrupted(
                f"topic {self._topic!r}: {name} ends at offset {self._offset} (byte {position}) "
                "but no segment starts there"
            )
        what = "incomplete" if stop == PARTIAL else "damaged"
        return BusCorrupted(
            f"topic {self._topic!r}: {what} record at offset {self._offset} (byte {position} "
            f"of {name}) with good records after it"
        )


@dataclass(frozen=True, slots=True)
class _Tail:
    """The result of checking a segment from its last usable index entry to its end."""

    first_offset: int  # where the check started
    first_pos: int
    data: bytes  # the segment's bytes from first_pos to its end
    starts: list[int]  # good frames' positions, relative to first_pos
    end: int  # segment position after the last good frame
    end_offset: int  # offset after the last good frame
    stop: int  # END, PARTIAL or INVALID


def _scan_tail(directory: Path, base: int, fd: int) -> _Tail:
    size = os.fstat(fd).st_size
    offset, position = base, 0
    index = _read_index(directory, base)
    if index is not None and len(index[0]):
        offsets, positions = index
        i = bisect_right(positions, size - 1) - 1  # the last entry inside the file
        if i >= 0:
            offset, position = _locate(fd, base, index, offsets[i])
    data = os.pread(fd, size - position, position) if size > position else b""
    starts, end, stop = scan(data, 0, offset)
    return _Tail(offset, position, data, starts, position + end, offset + len(starts), stop)


def _disk_end_offset(topic: str, directory: Path) -> int:
    bases = _list_segments(directory)
    if not bases:
        return 0
    with _open_read(_segment_path(directory, bases[-1])) as fd:
        return _scan_tail(directory, bases[-1], fd).end_offset


def _locate(
    fd: int, base: int, index: tuple[array[int], array[int]], offset: int
) -> tuple[int, int]:
    """The last index entry at or before ``offset`` if it points at that record, else the start."""
    offsets, positions = index
    i = bisect_right(offsets, offset) - 1
    if i >= 0 and frame_offset(os.pread(fd, HEAD_SIZE, positions[i])) == offsets[i]:
        return offsets[i], positions[i]
    return base, 0


def _rebuild_index(topic: str, directory: Path, base: int) -> None:
    path = _segment_path(directory, base)
    data = path.read_bytes()
    starts, end, stop = scan(data, 0, base)
    if stop != END:
        raise BusCorrupted(
            f"topic {topic!r}: damaged record at offset {base + len(starts)} (byte {end} of "
            f"{path.name}), a sealed segment"
        )
    entries, _ = index_entries(starts, base, 0)
    _write_atomically(_index_path(directory, base), index_bytes(entries), fsync=False)
    _log.info("topic %r: rebuilt the index of %s", topic, path.name)


def _list_segments(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        int(name[:20])
        for name in names
        if len(name) == 24 and name.endswith(_LOG_SUFFIX) and name[:20].isdigit()
    )


def _segment_path(directory: Path, base: int) -> Path:
    return directory / f"{base:020d}{_LOG_SUFFIX}"


def _index_path(directory: Path, base: int) -> Path:
    return directory / f"{base:020d}{_INDEX_SUFFIX}"


def _read_index(directory: Path, base: int) -> tuple[array[int], array[int]] | None:
    try:
        data = _index_path(directory, base).read_bytes()
    except FileNotFoundError:
        return None
    return parse_index(data)


def _read_committed(path: Path) -> int:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    try:
        offset = json.loads(data)["offset"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BusCorrupted(f"unreadable committed offset in {path}: {data[:80]!r}") from exc
    if not isinstance(offset, int) or offset < 0:
        raise BusCorrupted(f"invalid committed offset in {path}: {offset!r}")
    return offset


def _take_lock(path: Path, what: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise BusError(f"{what}: the lock {path} is held by process {holder}") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_atomically(path: Path, data: bytes, *, fsync: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _open_read(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)
