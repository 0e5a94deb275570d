"""A scoring process settles its heap as its state grows: short collections, no lost garbage."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from serve.heap import HEAP, settle_heap
from serve.pipeline import ScoringPipeline


@pytest.fixture
def settled() -> Iterator[None]:
    """settle_heap for the test only: the collector as it was afterwards."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        HEAP.every = 0
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_heap_is_settled_again_as_transactions_are_decided(
    history_and_model: tuple, settled: None
) -> None:
    history, (model, manifest) = history_and_model
    pipeline = ScoringPipeline(model, manifest)
    events = list(history.events)
    pipeline.process(events[:500])
    before = HEAP.settles
    pipeline.process(events[500:1000])
    assert HEAP.settles == before  # off until the process settles its heap

    settle_heap(every=100)
    frozen = gc.get_freeze_count()
    garbage = weakref.ref(_Cycle())  # a cycle dropped at once: only a collection frees it
    assert garbage() is not None
    decided = pipeline.stats.transactions
    for k in range(1000, 2000, 50):
        pipeline.process(events[k : k + 50])
    made = pipeline.stats.transactions - decided
    assert made >= 300
    # once each time 100 more transactions were decided (at most once a batch of 50)
    assert made // 150 <= HEAP.settles - before <= made // 100
    assert gc.get_freeze_count() > frozen  # the new state went into the frozen generation
    assert garbage() is None  # and the garbage before it was collected, not frozen
