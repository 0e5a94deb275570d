"""The feature stage in a child process decides exactly as the in-process pipeline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gnn.model import intra_op_threads
from serve.feature_worker import FeatureWorker
from serve.pipeline import ScoringPipeline


@pytest.fixture(scope="module")
def worker() -> Iterator[FeatureWorker]:
    w = FeatureWorker()
    yield w
    w.close()


def test_pipelined_batches_through_the_worker_decide_as_in_process(
    history_and_model: tuple, worker: FeatureWorker
) -> None:
    history, (model, manifest) = history_and_model
    events = list(history.events)
    # a retry of a transaction from the batch before, while that batch is still in flight
    retried = next(e for e in events[200:300] if e.event_type == "transaction")
    batches = [events[k : k + 100] for k in range(0, len(events), 100)]
    batches.insert(3, [retried])
    with intra_op_threads(1):
        local = ScoringPipeline(model, manifest)
        expected = [d for b in batches for d in local.process(b)]

        remote = ScoringPipeline(model, manifest, feature_worker=worker)
        got = []
        open_batch = remote.begin(batches[0])
        for b in batches[1:]:
            following = remote.begin(b)  # features of this batch while the last is decided
            got += remote.finish(open_batch)
            open_batch = following
        got += remote.finish(open_batch)
    assert len(got) == len(expected) > 1000
    assert [(d.txn_id, d.score, d.decision, d.reasons, d.ring_id, d.replayed) for d in got] == [
        (d.txn_id, d.score, d.decision, d.reasons, d.ring_id, d.replayed) for d in expected
    ]
    assert sum(d.replayed for d in got) >= 1
    assert remote.stats.transactions == local.stats.transactions
    # ring lookups go to the worker's detector
    ringed = next((d for d in got if d.ring_id), None)
    if ringed is not None:
        assert remote.features.ring(ringed.ring_id) is not None


def test_batches_finish_in_the_order_they_began(history_and_model: tuple) -> None:
    history, (model, manifest) = history_and_model
    pipeline = ScoringPipeline(model, manifest)
    first = pipeline.begin(history.events[:10])
    second = pipeline.begin(history.events[10:20])
    with pytest.raises(RuntimeError, match="order"):
        pipeline.finish(second)
    pipeline.finish(first)
    pipeline.finish(second)


def test_events_reach_the_worker_as_they_were_sent_offsets_included(
    history_and_model: tuple,
) -> None:
    from datetime import timedelta, timezone

    from ingest.events import decode_events, encode_events

    history, _ = history_and_model
    events = list(history.events[:500])
    # a timestamp in another offset: the time of day a feature reads is the sender's
    shifted = events[0].timestamp.astimezone(timezone(timedelta(hours=5, minutes=30)))
    events[0] = type(events[0])(
        **{f: getattr(events[0], f) for f in events[0].__struct_fields__} | {"timestamp": shifted}
    )
    assert {type(e).__name__ for e in events} >= {"Transaction", "Login"}
    back = decode_events(encode_events(events))
    assert [repr(e) for e in back] == [repr(e) for e in events]
    assert back[0].timestamp.utcoffset() == timedelta(hours=5, minutes=30)


def test_frames_larger_than_the_pipe_arrive_whole_and_in_order_without_the_sender_waiting() -> None:
    import os
    import threading

    from serve.feature_worker import _Reader, _Writer

    read_fd, write_fd = os.pipe()
    writer, reader = _Writer(write_fd, "test-writer"), _Reader(read_fd)
    frames = [os.urandom(3 << 20), b"small", b"", os.urandom(100_000)]
    # nobody reads yet: a sender that waited for room would never return
    sending = threading.Thread(target=lambda: [writer.send(f) for f in frames], daemon=True)
    sending.start()
    sending.join(10)
    assert not sending.is_alive(), "send waited for the reader"
    got: list[bytes] = []
    while len(got) < len(frames):
        more = reader.wait()
        assert more, "the writer went away"
        got += more
    assert got == frames
    writer.close()  # the reader then sees the end of the pipe
    assert reader.wait() == []
    assert reader.closed
    reader.close()


def test_a_partial_frame_is_kept_until_the_rest_arrives() -> None:
    import os

    from serve.feature_worker import _FRAME, _Reader

    read_fd, write_fd = os.pipe()
    reader = _Reader(read_fd)
    frame = _FRAME.pack(6) + b"abcdef"
    os.write(write_fd, frame[:5])
    assert reader.take() == []
    os.write(write_fd, frame[5:] + frame)
    assert reader.take() == [b"abcdef", b"abcdef"]
    os.close(write_fd)
    reader.close()


def test_a_worker_that_died_is_an_error_not_a_hang() -> None:
    from serve.feature_worker import FeatureWorkerError

    w = FeatureWorker()
    try:
        assert w.ring_of("acc_1") is None
        w._proc.kill()
        w._proc.join(5)
        with pytest.raises(FeatureWorkerError, match="gone"):
            w.ring_of("acc_1")
        assert w.ready(99)  # an event loop watching it learns of it at once
    finally:
        w.close()
