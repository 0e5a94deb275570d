"""Frames and index entries of the embedded log (private to :mod:`ingest.bus`).

A segment file is a run of frames, little-endian, with no file header::

    length     u32   bytes after the crc field: 20 + key bytes + payload bytes
    crc        u32   CRC-32 (zlib) of those ``length`` bytes
    offset     u64   the record's offset, checked against its place in the log
    timestamp  i64   milliseconds since the Unix epoch (UTC) when the batch was appended
    key_len    i32   bytes of UTF-8 key that follow; -1 for a record without a key
    key        key_len bytes
    payload    the rest of the frame

An index file is a run of ``(offset u64, position u64)`` pairs: the first record of the segment,
then the first record at or after every ``INDEX_INTERVAL`` bytes. It only speeds up seeking;
every entry is checked against the frame it points at before it is trusted.

The functions here work on bytes already read; they do no I/O. The hot paths
(:func:`encode_batch`, :func:`decode`) keep per-record Python work to a few C calls.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Final

from ingest.bus.base import Record

FRAME: Final = struct.Struct("<IIQqi")
"""length, crc, offset, timestamp_ms, key_len: the fixed head of a frame."""
BODY_HEAD: Final = struct.Struct("<Qqi")
"""offset, timestamp_ms, key_len: the part of the head that the CRC covers."""
PREFIX: Final = struct.Struct("<II")
"""length, crc."""
HEAD_SIZE: Final = FRAME.size  # 28
PREFIX_SIZE: Final = PREFIX.size  # 8
BODY_HEAD_SIZE: Final = BODY_HEAD.size  # 20

MAX_KEY_BYTES: Final = 64 * 1024
MAX_PAYLOAD_BYTES: Final = 16 * 1024 * 1024
MAX_LENGTH: Final = BODY_HEAD_SIZE + MAX_KEY_BYTES + MAX_PAYLOAD_BYTES

INDEX_ENTRY: Final = struct.Struct("<QQ")
INDEX_INTERVAL: Final = 4096
"""Bytes of log between two index entries: a seek reads at most about this much to land."""

# Why decode() or scan() stopped.
LIMIT: Final = 0
"""It produced as many records as asked."""
END: Final = 1
"""The buffer ended exactly at a frame boundary."""
PARTIAL: Final = 2
"""The buffer ends inside a frame (a frame being written, or a torn tail)."""
INVALID: Final = 3
"""A complete frame is damaged: bad length, key length, CRC or offset."""

_crc32 = zlib.crc32
_new_tuple = tuple.__new__
_get_crc = itemgetter(1)
_get_offset = itemgetter(2)
_get_timestamp = itemgetter(3)
_get_key_len = itemgetter(4)
_after_body_head = itemgetter(slice(BODY_HEAD_SIZE, None))
_utf8 = bytes.decode


def encode_batch(
    first_offset: int,
    timestamp_ms: int,
    payloads: Sequence[bytes],
    keys: Sequence[str | None] | None,
    position: int,
    next_index: int,
) -> tuple[bytes, array[int], int]:
    """Frame a batch of records for one write.

    Args:
        first_offset: the offset of ``payloads[0]``.
        timestamp_ms: the timestamp given to every record of the batch.
        payloads: the records' bytes.
        keys: one key (or None) per payload, or None for no keys at all.
        position: the segment position the batch will be written at.
        next_index: the position from which the next index entry is due.

    Returns:
        The frames, the new index entries as a flat ``array('Q')`` of ``offset, position``
        pairs, and the position from which the next index entry is due after this batch.

    Raises:
        ValueError: a payload or key is too large.
    """
    if payloads and max(map(len, payloads)) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    parts: list[bytes] = []
    add = parts.append
    index = array("Q")
    mark = index.append
    pack_body = BODY_HEAD.pack
    pack_prefix = PREFIX.pack
    crc32 = _crc32
    offset = first_offset
    if keys is None:
        for payload in payloads:
            if position >= next_index:
                mark(offset)
                mark(position)
                next_index = position + INDEX_INTERVAL
            head = pack_body(offset, timestamp_ms, -1)
            length = BODY_HEAD_SIZE + len(payload)
            add(pack_prefix(length, crc32(payload, crc32(head))))
            add(head)
            add(payload)
            position += PREFIX_SIZE + length
            offset += 1
    else:
        for payload, key in zip(payloads, keys, strict=True):
            if position >= next_index:
                mark(offset)
                mark(position)
                next_index = position + INDEX_INTERVAL
            if key is None:
                head = pack_body(offset, timestamp_ms, -1)
            else:
                kb = key.encode()
                if len(kb) > MAX_KEY_BYTES:
                    raise ValueError(f"key of record {offset} is longer than {MAX_KEY_BYTES} bytes")
                head = pack_body(offset, timestamp_ms, len(kb)) + kb
            length = len(head) + len(payload)
            add(pack_prefix(length, crc32(payload, crc32(head))))
            add(head)
            add(payload)
            position += PREFIX_SIZE + length
            offset += 1
    return b"".join(parts), index, next_index


def decode(buf: bytes, start: int, expected: int, limit: int) -> tuple[list[Record], int, int, int]:
    """Decode up to ``limit`` records from ``buf[start:]``; the first has offset ``expected``.

    Every frame is checked (length, key length, CRC, offset) before its record is returned.

    Returns:
        ``(records, end, stop, need)``: the records, the index in ``buf`` just after the last
        one, why decoding stopped (:data:`LIMIT`, :data:`END`, :data:`PARTIAL`,
        :data:`INVALID`), and for :data:`PARTIAL` the bytes the unfinished frame needs from
        ``end`` (0 when even its head is incomplete).
    """
    # The loop only walks the frames and slices them; the checks and the records are then
    # made by C-level map() calls over whole lists, which halves the cost per record.
    unpack = FRAME.unpack_from
    n = len(buf)
    last_head = n - HEAD_SIZE
    pos = start
    heads: list[tuple[int, int, int, int, int]] = []
    add_head = heads.append
    covered: list[bytes] = []  # body head + key: the part of the CRC'd bytes before the payload
    add_covered = covered.append
    payloads: list[bytes] = []
    add_payload = payloads.append
    stop = LIMIT
    need = 0
    remaining = limit
    while remaining:
        if pos > last_head:
            stop = END if pos == n else PARTIAL
            break
        head = unpack(buf, pos)
        length = head[0]
        end = pos + PREFIX_SIZE + length
        if end > n or length < BODY_HEAD_SIZE or length > MAX_LENGTH:
            if BODY_HEAD_SIZE <= length <= MAX_LENGTH:
                stop = PARTIAL
                need = PREFIX_SIZE + length
            else:
                stop = INVALID
            break
        key_len = head[4]
        if key_len > 0:
            key_end = pos + HEAD_SIZE + key_len
            if key_end > end:
                stop = INVALID
                break
        elif key_len < -1:
            stop = INVALID
            break
        else:
            key_end = pos + HEAD_SIZE
        add_head(head)
        add_covered(buf[pos + PREFIX_SIZE : key_end])
        add_payload(buf[key_end:end])
        pos = end
        remaining -= 1
    if not heads:
        return [], start, stop, need
    offsets = list(map(_get_offset, heads))
    good = len(heads)
    if list(map(_crc32, payloads, map(_crc32, covered))) != list(map(_get_crc, heads)) or (
        offsets != list(range(expected, expected + good))
    ):
        good = _first_bad(heads, covered, payloads, expected)
        pos = start + sum(PREFIX_SIZE + head[0] for head in heads[:good])
        stop = INVALID
        need = 0
        del heads[good:], covered[good:], payloads[good:], offsets[good:]
        if not heads:
            return [], start, stop, need
    key_lens = list(map(_get_key_len, heads))
    keys: list[str | None]
    if -1 not in key_lens:
        keys = list(map(_utf8, map(_after_body_head, covered)))
    elif max(key_lens) < 0:
        keys = [None] * len(heads)
    else:
        keys = [
            c[BODY_HEAD_SIZE:].decode() if k >= 0 else None
            for k, c in zip(key_lens, covered, strict=True)
        ]
    records = list(
        map(
            _new_tuple,
            repeat(Record),
            zip(offsets, keys, payloads, map(_get_timestamp, heads), strict=True),
        )
    )
    return records, pos, stop, need


def _first_bad(
    heads: list[tuple[int, int, int, int, int]],
    covered: list[bytes],
    payloads: list[bytes],
    expected: int,
) -> int:
    for i, (head, c, p) in enumerate(zip(heads, covered, payloads, strict=True)):
        if head[2] != expected + i or _crc32(p, _crc32(c)) != head[1]:
            return i
    return len(heads)


def scan(buf: bytes, start: int, expected: int) -> tuple[list[int], int, int]:
    """Check every frame of ``buf[start:]`` without building records.

    Returns:
        ``(starts, end, stop)``: where each good frame starts, the index after the last good
        frame, and why scanning stopped (:data:`END`, :data:`PARTIAL` or :data:`INVALID`).
    """
    starts: list[int] = []
    pos = start
    n = len(buf)
    view = memoryview(buf)
    unpack = FRAME.unpack_from
    offset = expected
    while True:
        if pos + HEAD_SIZE > n:
            return starts, pos, END if pos == n else PARTIAL
        length, crc, got, _, key_len = unpack(buf, pos)
        if not BODY_HEAD_SIZE <= length <= MAX_LENGTH:
            return starts, pos, INVALID
        end = pos + PREFIX_SIZE + length
        if end > n:
            return starts, pos, PARTIAL
        if (
            got != offset
            or key_len < -1
            or key_len > length - BODY_HEAD_SIZE
            or _crc32(view[pos + PREFIX_SIZE : end]) != crc
        ):
            return starts, pos, INVALID
        starts.append(pos)
        pos = end
        offset += 1


def frame_offset(head: bytes) -> int | None:
    """The offset in a frame head, or None when the head is short or its length is impossible."""
    if len(head) < HEAD_SIZE:
        return None
    length, _, offset, _, _ = FRAME.unpack_from(head)
    if not BODY_HEAD_SIZE <= length <= MAX_LENGTH:
        return None
    return int(offset)


def valid_frame_follows(buf: bytes, bad: int, expected: int, probes: int = 8) -> bool:
    """Whether a good frame for one of the ``probes`` offsets after ``expected`` lies after ``bad``.

    ``buf[bad:]`` starts with a damaged frame whose offset should be ``expected``. A torn tail
    has nothing good after it; damage in the middle of a log has. Each following frame carries
    its own offset, so candidates are found by searching for those offsets' bytes.
    """
    pack = struct.Struct("<Q").pack
    for candidate in range(expected + 1, expected + 1 + probes):
        needle = pack(candidate)
        hit = buf.find(needle, bad + PREFIX_SIZE)
        while hit != -1:
            pos = hit - PREFIX_SIZE
            if pos > bad:
                records, _, _, _ = decode(buf, pos, candidate, 1)
                if records:
                    return True
            hit = buf.find(needle, hit + 1)
    return False


def index_entries(
    starts: Sequence[int], first_offset: int, next_index: int
) -> tuple[array[int], int]:
    """Index entries for frames starting at ``starts`` (offsets from ``first_offset``).

    Returns the flat ``offset, position`` pairs and the position from which the next entry is due.
    """
    index = array("Q")
    for i, pos in enumerate(starts):
        if pos >= next_index:
            index.append(first_offset + i)
            index.append(pos)
            next_index = pos + INDEX_INTERVAL
    return index, next_index


def parse_index(data: bytes) -> tuple[array[int], array[int]]:
    """Split an index file's bytes into offsets and positions (dropping a partial last entry)."""
    whole = len(data) - len(data) % INDEX_ENTRY.size
    flat = array("Q")
    flat.frombytes(data[:whole])
    if sys.byteorder == "big":  # pragma: no cover - the files are little-endian
        flat.byteswap()
    return flat[0::2], flat[1::2]


def index_bytes(entries: array[int]) -> bytes:
    """The on-disk (little-endian) bytes of flat ``offset, position`` pairs."""
    if sys.byteorder == "big":  # pragma: no cover
        entries = array("Q", entries)
        entries.byteswap()
    return entries.tobytes()
