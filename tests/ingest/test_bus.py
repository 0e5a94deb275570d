"""Tests of the bus: a contract suite every backend passes, then the embedded log's own checks.

The contract tests take a ``backend`` fixture, parametrised over ``BACKENDS`` (only ``embedded``
for now; Pulsar joins with its name there and an opener in the fixture). The embedded tests
below them damage segment files by hand and kill a consumer process at random moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ingest.bus.embedded
from ingest.bus import Bus, Consumer, EmbeddedBus, Record
from ingest.bus import _format as fmt
from ingest.errors import BusCorrupted, BusError

REPO = Path(__file__).resolve().parents[2]
CONSUMER_PROC = Path(__file__).with_name("bus_consumer_proc.py")
SMALL_SEGMENT = 16 * 1024
BACKENDS = ["embedded"]
"""The backends the contract tests run against; each has a branch in the ``backend`` fixture."""


@dataclass
class BackendKit:
    """How a contract test reaches one backend."""

    name: str
    open: Callable[[], Bus]
    """Open a bus on the same storage each time (so reopening shows what persisted)."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendKit]:
    opened: list[Bus] = []

    def open_embedded() -> Bus:
        # Small segments, so every contract test also crosses segment boundaries.
        bus = EmbeddedBus(tmp_path / "bus", segment_bytes=SMALL_SEGMENT)
        opened.append(bus)
        return bus

    kits = {"embedded": open_embedded}
    yield BackendKit(request.param, kits[request.param])
    for bus in opened:
        bus.close()


def payloads(n: int, start: int = 0, size: int = 0) -> list[bytes]:
    return [f"record-{i}".encode().ljust(size, b".") for i in range(start, start + n)]


def drain(consumer: Consumer, max_records: int = 1000) -> list[Record]:
    out: list[Record] = []
    while batch := consumer.poll(max_records):
        out += batch
    return out


# --------------------------------------------------------------------------------------------
# Contract: every backend


def test_append_returns_last_offset_and_end_offset_counts(backend: BackendKit) -> None:
    bus = backend.open()
    assert bus.end_offset("t") == 0
    assert bus.append("t", payloads(3)) == 2
    assert bus.append("t", payloads(2, 3)) == 4
    assert bus.end_offset("t") == 5
    assert bus.end_offset("other") == 0


def test_empty_batch_is_a_no_op(backend: BackendKit) -> None:
    bus = backend.open()
    assert bus.append("t", []) == -1
    assert bus.end_offset("t") == 0
    bus.append("t", payloads(4))
    assert bus.append("t", [], keys=[]) == 3
    assert bus.end_offset("t") == 4
    with bus.consumer("t", "g") as consumer:
        assert [r.offset for r in drain(consumer)] == [0, 1, 2, 3]


def test_records_round_trip_in_order(backend: BackendKit) -> None:
    bus = backend.open()
    sent = [*payloads(500, size=100), b"", bytes(range(256))]
    bus.append("t", sent[:250])
    bus.append("t", sent[250:])
    with bus.consumer("t", "g") as consumer:
        got = drain(consumer, max_records=37)
    assert [r.payload for r in got] == sent
    assert [r.offset for r in got] == list(range(len(sent)))


def test_keys_and_timestamps_round_trip(backend: BackendKit) -> None:
    bus = backend.open()
    keys = ["acct-1", None, "", "ключ-🔑", "acct-1"]
    before = time.time_ns() // 1_000_000
    bus.append("t", payloads(5), keys=keys)
    bus.append("t", payloads(2, 5))
    after = time.time_ns() // 1_000_000
    with bus.consumer("t", "g") as consumer:
        got = drain(consumer)
    assert [r.key for r in got] == [*keys, None, None]
    assert all(before <= r.timestamp_ms <= after for r in got)
    assert len({r.timestamp_ms for r in got[:5]}) == 1  # one timestamp per batch


def test_poll_never_blocks_and_returns_empty_at_the_end(backend: BackendKit) -> None:
    bus = backend.open()
    with bus.consumer("t", "g") as consumer:
        started = time.perf_counter()
        assert consumer.poll() == []  # the topic does not exist yet
        bus.append("t", payloads(3))
        assert [r.payload for r in consumer.poll(2)] == payloads(2)
        assert [r.payload for r in consumer.poll(2)] == payloads(1, 2)
        assert consumer.poll() == []
        assert consumer.poll() == []
        assert time.perf_counter() - started < 2.0
        bus.append("t", payloads(1, 3))
        assert [r.offset for r in consumer.poll()] == [3]


def test_commit_defaults_to_position_and_lag_counts_unacknowledged(backend: BackendKit) -> None:
    bus = backend.open()
    bus.append("t", payloads(10))
    with bus.consumer("t", "g") as consumer:
        assert (consumer.committed, consumer.position, consumer.lag) == (0, 0, 10)
        consumer.poll(4)
        assert (consumer.committed, consumer.position, consumer.lag) == (0, 4, 10)
        consumer.commit()
        assert (consumer.committed, consumer.position, consumer.lag) == (4, 4, 6)
        consumer.poll(3)
        consumer.commit(5)
        assert (consumer.committed, consumer.position, consumer.lag) == (5, 7, 5)
        drain(consumer)
        consumer.commit()
        assert consumer.lag == 0
        assert consumer.topic == "t"
        assert consumer.group == "g"


def test_commit_beyond_position_or_negative_is_refused(backend: BackendKit) -> None:
    bus = backend.open()
    bus.append("t", payloads(10))
    with bus.consumer("t", "g") as consumer:
        consumer.poll(3)
        with pytest.raises(ValueError, match="position"):
            consumer.commit(4)
        with pytest.raises(ValueError, match="between 0 and the position"):
            consumer.commit(-1)
        consumer.commit(2)
        assert consumer.committed == 2


def test_uncommitted_records_are_delivered_again(backend: BackendKit) -> None:
    bus = backend.open()
    bus.append("t", payloads(10))
    with bus.consumer("t", "g") as consumer:
        consumer.poll(6)
        consumer.commit(4)
    with bus.consumer("t", "g") as consumer:
        assert consumer.committed == 4
        assert [r.offset for r in drain(consumer)] == list(range(4, 10))


def test_groups_are_independent(backend: BackendKit) -> None:
    bus = backend.open()
    bus.append("t", payloads(10))
    with bus.consumer("t", "a") as a, bus.consumer("t", "b") as b:
        assert [r.offset for r in a.poll(7)] == list(range(7))
        a.commit()
        assert [r.offset for r in b.poll(2)] == [0, 1]
        b.commit()
        assert (a.committed, b.committed) == (7, 2)
    with bus.consumer("t", "a") as a, bus.consumer("t", "b") as b, bus.consumer("t", "c") as c:
        assert (a.position, b.position, c.position) == (7, 2, 0)
        assert (a.lag, b.lag, c.lag) == (3, 8, 10)


def test_a_group_has_one_consumer_at_a_time(backend: BackendKit) -> None:
    bus = backend.open()
    first = bus.consumer("t", "g")
    with pytest.raises(BusError, match="already has a consumer"):
        bus.consumer("t", "g")
    first.close()
    bus.consumer("t", "g").close()


def test_seek_moves_position_not_committed(backend: BackendKit) -> None:
    bus = backend.open()
    for start in range(0, 600, 100):  # several segments with SMALL_SEGMENT
        bus.append("t", payloads(100, start, size=200))
    with bus.consumer("t", "g") as consumer:
        for target in [599, 0, 350, 100, 101, 7, 600, 250]:
            consumer.seek(target)
            assert consumer.position == target
            got = consumer.poll(2)
            assert [r.offset for r in got] == [o for o in (target, target + 1) if o < 600]
            assert all(r.payload == payloads(1, r.offset, size=200)[0] for r in got)
        assert consumer.committed == 0
        with pytest.raises(ValueError, match="holds 0 to 600"):
            consumer.seek(601)
        with pytest.raises(ValueError, match="holds 0 to 600"):
            consumer.seek(-1)
        consumer.seek(300)
        consumer.commit()
        consumer.seek(10)
        consumer.commit()  # seeking back then committing rewinds the group
        assert consumer.committed == 10


def test_reopen_preserves_records_and_offsets(backend: BackendKit) -> None:
    bus = backend.open()
    bus.append("t", payloads(300, size=150), keys=[f"k{i % 7}" for i in range(300)])
    bus.append("u", payloads(5))
    with bus.consumer("t", "g") as consumer:
        consumer.poll(120)
        consumer.commit()
    bus.close()

    bus = backend.open()
    assert (bus.end_offset("t"), bus.end_offset("u")) == (300, 5)
    with bus.consumer("t", "g") as consumer:
        assert consumer.committed == 120
        got = drain(consumer)
    assert [r.offset for r in got] == list(range(120, 300))
    assert [r.key for r in got] == [f"k{i % 7}" for i in range(120, 300)]
    assert bus.append("t", payloads(1, 300)) == 300


def test_large_records(backend: BackendKit) -> None:
    bus = backend.open()
    big = [os.urandom(3 * 1024 * 1024), b"small", os.urandom(100_000)]
    bus.append("t", big)
    with bus.consumer("t", "g") as consumer:
        assert [r.payload for r in drain(consumer, max_records=1)] == big


def test_bad_arguments_are_refused(backend: BackendKit) -> None:
    bus = backend.open()
    for name in ["", "../x", "a/b", ".hidden", "x" * 129, "sp ace"]:
        with pytest.raises(ValueError, match="invalid topic name"):
            bus.append(name, [b"x"])
        with pytest.raises(ValueError, match="invalid group name"):
            bus.consumer("t", name)
    with pytest.raises(ValueError, match="2 keys for 3 payloads"):
        bus.append("t", payloads(3), keys=["a", "b"])
    with bus.consumer("t", "g") as consumer, pytest.raises(ValueError, match="at least 1"):
        consumer.poll(0)
    assert bus.end_offset("t") == 0


def test_closed_bus_and_consumer_refuse_work(backend: BackendKit) -> None:
    bus = backend.open()
    consumer = bus.consumer("t", "g")
    bus.close()
    with pytest.raises(ValueError, match="closed"):
        consumer.poll()
    with pytest.raises(ValueError, match="closed"):
        bus.append("t", [b"x"])
    bus.close()  # closing twice is fine


# --------------------------------------------------------------------------------------------
# Embedded log: files, torn tails, corruption, locks, crashes


def segments(topic_dir: Path) -> list[Path]:
    return sorted(topic_dir.glob("*.log"))


def frame(offset: int, payload: bytes, key: str | None = None, timestamp_ms: int = 1) -> bytes:
    data, _, _ = fmt.encode_batch(offset, timestamp_ms, [payload], [key], 0, 0)
    return data


def test_layout_and_injected_clock(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path, clock=lambda: 1_700_000_000_123) as bus:
        bus.append("payments", payloads(3), keys=["a", "b", None])
        with bus.consumer("payments", "scoring") as consumer:
            assert {r.timestamp_ms for r in consumer.poll()} == {1_700_000_000_123}
            consumer.commit()
    topic = tmp_path / "payments"
    assert sorted(p.name for p in topic.iterdir()) == [
        "00000000000000000000.idx",
        "00000000000000000000.log",
        "groups",
        "writer.lock",
    ]
    assert json.loads((topic / "groups" / "scoring.json").read_text()) == {"offset": 3}
    assert repr(bus).startswith("EmbeddedBus(")


def test_segment_rollover_and_seek_across_segments(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path, segment_bytes=4096) as bus:
        for start in range(0, 2000, 50):
            bus.append("t", payloads(50, start, size=60))
        files = segments(tmp_path / "t")
        assert len(files) > 20
        bases = [int(f.stem) for f in files]
        assert bases[0] == 0
        assert bases == sorted(bases)
        assert all(f.stat().st_size <= 4096 + 50 * 100 for f in files)
        with bus.consumer("t", "g") as consumer:
            assert [r.offset for r in drain(consumer, 333)] == list(range(2000))
            for target in random.Random(7).sample(range(2000), 300) + bases:
                consumer.seek(target)
                (record,) = consumer.poll(1)
                assert record.offset == target
                assert record.payload == payloads(1, target, size=60)[0]
        assert bus.verify("t") == 2000


def test_index_is_rebuilt_when_missing_and_ignored_when_wrong(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path, segment_bytes=8192) as bus:
        for start in range(0, 1000, 100):
            bus.append("t", payloads(100, start, size=40))
    indexes = sorted((tmp_path / "t").glob("*.idx"))
    assert len(indexes) > 3
    for index in indexes:
        index.unlink()
    (tmp_path / "t" / indexes[1].name).write_bytes(b"\x07" * 64)  # a wrong one
    with EmbeddedBus(tmp_path) as bus, bus.consumer("t", "g") as consumer:
        for target in (0, 999, 500, 123, 1000):
            consumer.seek(target)
            assert [r.offset for r in consumer.poll(1)] == ([target] if target < 1000 else [])
        bus.append("t", [b"more"])  # the writer rebuilds the missing indexes
        assert {p.name for p in (tmp_path / "t").glob("*.idx")} == {p.name for p in indexes}
        with pytest.raises(BusCorrupted, match="index entry"):
            bus.verify("t")  # the wrong index is not missing, so it stays, and verify says so
    (tmp_path / "t" / indexes[1].name).unlink()
    with EmbeddedBus(tmp_path) as bus:
        bus.append("t", [b"again"])
        assert bus.verify("t") == 1002


@pytest.mark.parametrize(
    "tail",
    ["half-frame", "head-only", "zeros", "garbage", "bad-crc-last-record", "impossible-length"],
)
def test_torn_tail_is_truncated(tmp_path: Path, tail: str) -> None:
    with EmbeddedBus(tmp_path) as bus:
        bus.append("t", payloads(100, size=50), keys=[f"k{i}" for i in range(100)])
    (log,) = segments(tmp_path / "t")
    good_size = log.stat().st_size
    whole = frame(100, b"the record being written when the power went", "k100")
    damaged = {
        "half-frame": whole[: len(whole) // 2],
        "head-only": whole[:10],
        "zeros": bytes(4096),
        "garbage": random.Random(1).randbytes(3000),
        "bad-crc-last-record": whole[:-1] + bytes([whole[-1] ^ 0xFF]),
        "impossible-length": b"\xff\xff\xff\xff" + whole[4:],
    }[tail]
    with log.open("ab") as f:
        f.write(damaged)

    # A reader sees the 100 good records and then nothing, without raising.
    with EmbeddedBus(tmp_path) as reader, reader.consumer("t", "g") as consumer:
        assert [r.offset for r in drain(consumer)] == list(range(100))
        assert reader.end_offset("t") == 100
        assert reader.verify("t") == 100

    # The next writer truncates the tail and carries on at offset 100.
    with EmbeddedBus(tmp_path) as bus:
        assert bus.append("t", [b"after"], keys=["k"]) == 100
        assert log.stat().st_size == good_size + len(frame(100, b"after", "k"))
        with bus.consumer("t", "g") as consumer:
            got = drain(consumer)
        assert [r.payload for r in got] == [*payloads(100, size=50), b"after"]
        assert [r.key for r in got] == [*(f"k{i}" for i in range(100)), "k"]
        assert bus.verify("t") == 101


def test_reader_sees_only_complete_records(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path) as bus:
        bus.append("t", payloads(3))
    (log,) = segments(tmp_path / "t")
    whole = frame(3, b"x" * 5000, "key")
    with EmbeddedBus(tmp_path) as reader, reader.consumer("t", "g") as consumer:
        assert len(drain(consumer)) == 3
        for cut in (5, 27, 28, 100, len(whole) - 1):
            with log.open("ab") as f:  # simulate a writer part-way through a write
                f.write(whole[:cut])
            assert consumer.poll() == []
            assert reader.end_offset("t") == 3
            with log.open("ab") as f:
                f.truncate(log.stat().st_size - cut)
        with log.open("ab") as f:
            f.write(whole)
        (record,) = consumer.poll()
        assert (record.offset, record.key, record.payload) == (3, "key", b"x" * 5000)


def flip_byte(path: Path, position: int) -> None:
    with path.open("r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x01]))


def test_corruption_in_a_sealed_segment_raises(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path, segment_bytes=4096) as bus:
        for start in range(0, 400, 20):
            bus.append("t", payloads(20, start, size=80))
    first, second = segments(tmp_path / "t")[:2]
    record_size = len(frame(0, payloads(1, size=80)[0]))
    flip_byte(first, 5 * record_size + 40)  # inside record 5's payload
    with EmbeddedBus(tmp_path) as bus:
        with bus.consumer("t", "g") as consumer:
            assert [r.offset for r in consumer.poll(100)] == [0, 1, 2, 3, 4]
            with pytest.raises(BusCorrupted, match="offset 5"):
                consumer.poll(100)
            with pytest.raises(BusCorrupted, match="offset 5"):
                consumer.seek(7)  # reaching 7 means reading through 5
            assert consumer.position == 7
            consumer.seek(int(second.stem))  # past the damage, reading goes on
            assert consumer.poll(1)[0].offset == int(second.stem)
            consumer.seek(3)
            consumer.commit()
        with bus.consumer("t", "g") as consumer:  # opens at the committed offset, before damage
            assert [r.offset for r in consumer.poll(100)] == [3, 4]
            with pytest.raises(BusCorrupted, match="offset 5"):
                consumer.poll(100)
            consumer.seek(20)
            consumer.commit(7)
        with bus.consumer("t", "g") as consumer:  # committed inside the damaged stretch
            with pytest.raises(BusCorrupted, match="offset 5"):
                consumer.poll()
            consumer.seek(int(second.stem))  # an operator can still move the group past it
            assert consumer.poll(1)[0].offset == int(second.stem)
        with pytest.raises(BusCorrupted, match="offset 5"):
            bus.verify("t")
        assert bus.append("t", [b"x"]) == 400  # the last segment is sound


def test_corruption_in_the_last_segment_raises(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path) as bus:
        bus.append("t", payloads(300, size=80))
    (log,) = segments(tmp_path / "t")
    record_size = len(frame(0, payloads(1, size=80)[0]))
    flip_byte(log, 150 * record_size + 12)  # record 150's offset field
    with EmbeddedBus(tmp_path) as bus, bus.consumer("t", "g") as consumer:
        assert len(consumer.poll(1000)) == 150
        with pytest.raises(BusCorrupted, match="offset 150"):
            consumer.poll()
        with pytest.raises(BusCorrupted):
            bus.verify("t")

    # Damage after the last index entry is seen by the next writer, which refuses to truncate.
    flip_byte(log, 150 * record_size + 12)  # repair
    flip_byte(log, 298 * record_size + 30)
    with EmbeddedBus(tmp_path) as bus, pytest.raises(BusCorrupted, match="offset 298"):
        bus.append("t", [b"x"])
    assert log.stat().st_size == 300 * record_size


def test_a_gap_between_segments_raises(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path, segment_bytes=2048) as bus:
        for start in range(0, 100, 10):
            bus.append("t", payloads(10, start, size=100))
    files = segments(tmp_path / "t")
    files[2].unlink()
    with EmbeddedBus(tmp_path) as bus:
        with bus.consumer("t", "g") as consumer, pytest.raises(BusCorrupted, match="no segment"):
            drain(consumer)
        with pytest.raises(BusCorrupted):
            bus.verify("t")


def test_second_writer_is_refused(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path) as first:
        first.append("t", [b"a"])
        with EmbeddedBus(tmp_path) as second:
            with pytest.raises(
                BusError, match=f"topic 't' already has a writer.*held by process {os.getpid()}"
            ):
                second.append("t", [b"b"])
            assert second.append("other", [b"c"]) == 0  # other topics are free
            with second.consumer("t", "g") as consumer:  # reading is always allowed
                assert [r.payload for r in consumer.poll()] == [b"a"]
        script = (
            "import sys; from ingest.bus import EmbeddedBus; from ingest.errors import BusError\n"
            f"bus = EmbeddedBus({str(tmp_path)!r})\n"
            "try:\n    bus.append('t', [b'c'])\nexcept BusError as e:\n    print(e); sys.exit(3)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 3, other.stderr
        assert f"held by process {os.getpid()}" in other.stdout
    with EmbeddedBus(tmp_path) as third:  # released on close
        assert third.append("t", [b"d"]) == 1


def test_failed_write_leaves_no_partial_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedBus(tmp_path) as bus:
        bus.append("t", payloads(5))

        def half_then_fail(fd: int, data: bytes) -> None:
            os.write(fd, data[: len(data) // 2])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(ingest.bus.embedded, "_write_all", half_then_fail)
        with pytest.raises(BusError, match="No space left") as caught:
            bus.append("t", payloads(50, 5))
        assert caught.value.is_retryable()
        monkeypatch.undo()
        assert bus.end_offset("t") == 5
        assert bus.append("t", payloads(2, 5)) == 6
        with bus.consumer("t", "g") as consumer:
            assert [r.payload for r in drain(consumer)] == payloads(7)
        assert bus.verify("t") == 7


def test_failed_fsync_stops_the_writer_until_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EmbeddedBus(tmp_path) as bus:
        bus.append("t", payloads(5))

        def fail(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", fail)
        with pytest.raises(BusError, match="Input/output error"):
            bus.append("t", payloads(3, 5))
        monkeypatch.undo()
        with pytest.raises(BusError, match="reopen"):
            bus.append("t", payloads(3, 5))
        assert bus.end_offset("t") == 5
    with EmbeddedBus(tmp_path) as bus:
        assert bus.append("t", payloads(3, 5)) == 7
        assert bus.verify("t") == 8


def test_committed_offset_beyond_the_end_starts_at_the_end(tmp_path: Path) -> None:
    with EmbeddedBus(tmp_path, fsync=False) as bus:
        bus.append("t", payloads(5))
        with bus.consumer("t", "g"):
            pass
    (tmp_path / "t" / "groups" / "g.json").write_text('{"offset": 9}')  # as after a power cut
    with EmbeddedBus(tmp_path) as bus, bus.consumer("t", "g") as consumer:
        assert (consumer.committed, consumer.position, consumer.lag) == (5, 5, 0)
    (tmp_path / "t" / "groups" / "g.json").write_text("{not json")
    with EmbeddedBus(tmp_path) as bus, pytest.raises(BusCorrupted, match="committed offset"):
        bus.consumer("t", "g")


def test_killed_consumer_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    """A consumer killed at random moments, restarted each time, handles every record once.

    The parent appends the topic while a consumer process reads it; the consumer is SIGKILLed
    several times part-way through and restarted. Its output must end up holding every record
    exactly once, in order, and the group's lag must be 0.
    """
    total, kills_wanted = 50_000, 6
    seed = int(os.environ.get("BUS_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    root, output = tmp_path / "bus", tmp_path / "processed.txt"
    ids = [f"txn-{i:05d}-{rng.randrange(16**6):06x}".encode() for i in range(total)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def start(incarnation: int) -> subprocess.Popen[bytes]:
        args = [str(root), "txns", "scorer", str(total), str(output), str(seed + incarnation)]
        return subprocess.Popen([sys.executable, str(CONSUMER_PROC), *args], env=env, cwd=REPO)

    with EmbeddedBus(root, segment_bytes=256 * 1024) as bus:
        bus.append("txns", ids[:10_000])  # a backlog, then the rest over about a second
        appended = 10_000
        kills = 0
        proc = start(0)
        killed_at = time.monotonic() + rng.uniform(0.05, 0.35)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if appended < total:
                n = min(rng.randint(100, 2000), total - appended)
                bus.append("txns", ids[appended : appended + n])
                appended += n
            time.sleep(rng.uniform(0.005, 0.04))
            if proc.poll() is not None:
                break
            if kills < kills_wanted and time.monotonic() >= killed_at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = start(kills)
                killed_at = time.monotonic() + rng.uniform(0.05, 0.35)
        else:
            proc.kill()
            pytest.fail(f"the consumer did not finish in time (seed {seed})")
        assert proc.wait() == 0, f"seed {seed}"
        assert kills >= 3, f"only {kills} kills landed mid-way (seed {seed})"

        lines = output.read_bytes().split(b"\n")
        assert lines.pop() == b""
        assert len(lines) == total, f"{len(lines)} lines for {total} records (seed {seed})"
        assert lines == [b"%d %s" % (i, ids[i]) for i in range(total)], f"seed {seed}"
        with bus.consumer("txns", "scorer") as consumer:
            assert (consumer.committed, consumer.lag) == (total, 0)
            assert consumer.poll() == []
        assert bus.verify("txns") == total
