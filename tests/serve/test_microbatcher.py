"""The micro-batcher with a feature worker: the event loop never waits for the worker's answer.

The worker here is a stand-in whose answers the test releases one by one (the real worker, a
child process, is tested in ``test_feature_worker.py`` and through the API in ``test_api.py``);
what is under test is the batcher's scheduling: which batches are begun, when they are
finished, and that each request gets its own transactions' decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from serve.api import MAX_FLYING, MicroBatcher


class HeldWorker:
    """Answers only the tickets the test released; its descriptor rings on each release."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        self.released: set[int] = set()

    def fileno(self) -> int:
        return self._read

    def release(self, ticket: int) -> None:
        self.released.add(ticket)
        os.write(self._write, b"!")

    def ready(self, ticket: int) -> bool:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read, 1024)
        return ticket in self.released

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


class Pipeline:
    """Begins batches into the held worker; finishing one before its answer is recorded."""

    def __init__(self, worker: HeldWorker) -> None:
        self.worker = worker
        self.begun: list[list[Any]] = []
        self.finished: list[int] = []
        self.early: list[int] = []

    def begin(self, events: list[Any]) -> SimpleNamespace:
        self.begun.append(list(events))
        return SimpleNamespace(ticket=len(self.begun), events=list(events))

    def finish(self, batch: SimpleNamespace) -> list[str]:
        if batch.ticket not in self.worker.released:
            self.early.append(batch.ticket)  # the real worker would block the loop here
        self.finished.append(batch.ticket)
        return [f"decided {e}" for e in batch.events]


async def _spin(turns: int = 5) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def _apart(batcher: MicroBatcher, requests: list[list[Any]]) -> list[asyncio.Task]:
    """The requests sent one after another, each drained before the next arrives."""
    calls = []
    for events in requests:
        calls.append(asyncio.create_task(batcher.score(events)))
        await _spin()
    return calls


def _run(scenario: Callable[[HeldWorker, Pipeline, MicroBatcher], Awaitable[None]]) -> None:
    async def main() -> None:
        worker = HeldWorker()
        try:
            pipeline = Pipeline(worker)
            await scenario(worker, pipeline, MicroBatcher(pipeline))  # type: ignore[arg-type]
        finally:
            worker.close()

    asyncio.run(main())


def test_batches_wait_in_the_worker_while_the_loop_goes_on_and_finish_in_order() -> None:
    async def scenario(worker: HeldWorker, pipeline: Pipeline, batcher: MicroBatcher) -> None:
        calls = await _apart(batcher, [[f"t{k}a", f"t{k}b"] for k in range(3)])
        assert len(pipeline.begun) == 3, "a request waited for the batch before it"
        assert pipeline.finished == []

        worker.release(2)  # the second answer first: nothing may be decided out of order
        await _spin()
        assert pipeline.finished == []
        worker.release(1)
        await _spin()
        assert pipeline.finished == [1, 2]
        assert await calls[0] == ["decided t0a", "decided t0b"]
        assert await calls[1] == ["decided t1a", "decided t1b"]
        assert not calls[2].done()
        worker.release(3)
        assert await asyncio.wait_for(calls[2], 5) == ["decided t2a", "decided t2b"]
        assert pipeline.early == []

    _run(scenario)


def test_a_worker_far_behind_makes_the_loop_wait_for_the_oldest_batch() -> None:
    async def scenario(worker: HeldWorker, pipeline: Pipeline, batcher: MicroBatcher) -> None:
        calls = await _apart(batcher, [[k] for k in range(MAX_FLYING + 2)])
        # each batch beyond MAX_FLYING waited for (finished) the oldest one in the worker
        assert len(pipeline.begun) == MAX_FLYING + 2
        assert pipeline.early == [1, 2]
        assert [await c for c in calls[:2]] == [["decided 0"], ["decided 1"]]
        for ticket in range(3, MAX_FLYING + 3):
            worker.release(ticket)
        got = await asyncio.wait_for(asyncio.gather(*calls[2:]), 5)
        assert got == [[f"decided {k}"] for k in range(2, MAX_FLYING + 2)]
        assert pipeline.finished == list(range(1, MAX_FLYING + 3))

    _run(scenario)
