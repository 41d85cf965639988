"""The dispatcher (deployments/batcher.py), alone: batches cut by the token budget and handed to the worker
the backend picks, each text answered from its batch, a dead worker's batch retried once, and every
failure answered with Elasticsearch's message.

The worker here runs in the test's event loop and answers each text with its own ids as indices, so what
reached which batch is plain; the dispatcher with real worker processes is test_deployment.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from elserve.deployments import messages
from elserve.deployments.batcher import BatchAnswer, Batcher, WorkerDied
from elserve.deployments.queue import Entry, LanedQueue
from elserve.deployments.stats import DeploymentCounters
from elserve.errors import ElasticsearchError, RejectedExecutionException, StatusException


class EchoWorker:
    """Runs a batch at once: each text's indices are its ids; `fail` (per batch, in order) raises instead."""

    def __init__(self, failures: list[Exception] | None = None, slots: int = 1) -> None:
        self.batches: list[list[int]] = []  # the sizes (tokens) of each batch's texts
        self.more_waiting: list[bool] = []  # what the dispatcher said of each batch
        self.slots = slots
        self._failures = list(failures or [])

    def submit(self, batch: list[np.ndarray], more_waiting: bool = False) -> asyncio.Future[BatchAnswer]:
        self.batches.append([len(ids) for ids in batch])
        self.more_waiting.append(more_waiting)
        future: asyncio.Future[BatchAnswer] = asyncio.get_running_loop().create_future()
        if self._failures:
            future.set_exception(self._failures.pop(0))
        else:
            future.set_result(([(ids, np.ones(len(ids), np.float32)) for ids in batch], 0.01 * len(batch)))
        return future

    def withdraw(self, future: asyncio.Future[BatchAnswer]) -> None:
        raise AssertionError("a batch answered at once is never withdrawn")


class HeldWorker:
    """Holds every batch (its future never resolves by itself); records what was withdrawn."""

    slots = 1

    def __init__(self) -> None:
        self.running: list[asyncio.Future[BatchAnswer]] = []
        self.withdrawn: list[asyncio.Future[BatchAnswer]] = []

    def submit(self, batch: list[np.ndarray], more_waiting: bool = False) -> asyncio.Future[BatchAnswer]:
        self.running.append(asyncio.get_running_loop().create_future())
        return self.running[-1]

    def withdraw(self, future: asyncio.Future[BatchAnswer]) -> None:
        self.withdrawn.append(future)
        future.cancel()


class Observed:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def batch(self, deployment_id: str, size: int, tokens: int) -> None:
        self.batches.append((size, tokens))


def _entries(sizes: list[int], search: bool = False) -> list[Entry]:
    loop = asyncio.get_running_loop()
    return [Entry(np.arange(size, dtype=np.int32), loop.create_future(), search=search) for size in sizes]


async def _run(
    sizes: list[int],
    worker: EchoWorker,
    *,
    max_tokens: int = 100,
    failed: Callable[[], bool] = lambda: False,
) -> tuple[list[Entry], Batcher, Observed]:
    queue = LanedQueue()
    observed = Observed()
    batcher = Batcher(
        "d", queue, DeploymentCounters(), observed, max_batch_tokens=max_tokens, max_batch_size=256, failed=failed
    )
    entries = _entries(sizes)
    queue.push(entries)
    dispatcher = asyncio.ensure_future(batcher.run(lambda search_waiting: (worker, False)))
    batcher.wake()
    await asyncio.wait_for(asyncio.gather(*(e.future for e in entries), return_exceptions=True), 60)
    dispatcher.cancel()
    return entries, batcher, observed


def test_batches_are_cut_by_the_token_budget_and_each_text_gets_its_own_answer() -> None:
    async def main() -> None:
        worker = EchoWorker()
        entries, batcher, observed = await _run([40, 40, 40, 150, 10], worker, max_tokens=100)
        # In order while the budget holds; a text longer than the budget runs alone.
        assert worker.batches == [[40, 40], [40], [150], [10]]
        for entry in entries:
            vector = entry.future.result()
            np.testing.assert_array_equal(vector.indices, entry.ids)
        assert batcher.counters.inference_count == 5 and batcher.counters.error_count == 0
        assert observed.batches == [(2, 80), (1, 40), (1, 150), (1, 10)]

    asyncio.run(main())


def test_a_worker_with_two_slots_gets_batches_of_half_the_budget_told_whether_more_wait() -> None:
    async def main() -> None:
        worker = EchoWorker(slots=2)
        await _run([30, 30, 30, 10], worker, max_tokens=100)
        # Each batch is cut to a slot's share (50 tokens), so that two beside each other hold what
        # one batch of the whole budget would; the last is told that nothing waits behind it.
        assert worker.batches == [[30], [30], [10, 30]]  # (a batch is sorted by length)
        assert worker.more_waiting == [True, True, False]

    asyncio.run(main())


def test_a_batch_whose_worker_died_is_retried_once() -> None:
    async def main() -> None:
        worker = EchoWorker([WorkerDied("worker process 1 exited unexpectedly")])
        entries, batcher, _ = await _run([5, 5], worker)
        assert [e.future.result().indices.size for e in entries] == [5, 5]
        assert len(worker.batches) == 2 and batcher.counters.error_count == 0

    asyncio.run(main())


def test_a_batch_lost_twice_answers_the_crash_as_elasticsearch_does() -> None:
    async def main() -> None:
        worker = EchoWorker([WorkerDied("gone"), WorkerDied("gone again")])
        entries, batcher, _ = await _run([5, 5], worker)
        for entry in entries:
            error = entry.future.exception()
            assert isinstance(error, StatusException) and error.status == 500
            assert error.reason == "inference process crashed due to reason [gone again]"
        assert batcher.counters.error_count == 2

    asyncio.run(main())


def test_a_dead_worker_of_a_failed_deployment_is_not_retried() -> None:
    async def main() -> None:
        worker = EchoWorker([WorkerDied("gone")])
        entries, _, _ = await _run([5], worker, failed=lambda: True)
        error = entries[0].future.exception()
        assert isinstance(error, StatusException) and (error.status, error.reason) == (
            409,
            "Trained model [d] is [failed]",
        )
        assert len(worker.batches) == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    ("raised", "status", "reason", "counted"),
    [
        (messages.queue_full(), 429, "inference process queue is full. Unable to execute command", False),
        (RuntimeError("bad input"), 500, "inference failed: bad input", True),
    ],
)
def test_a_failed_batch_answers_each_text(raised: Exception, status: int, reason: str, counted: bool) -> None:
    async def main() -> None:
        entries, batcher, _ = await _run([3, 4], EchoWorker([raised]))
        for entry in entries:
            error = entry.future.exception()
            assert isinstance(error, ElasticsearchError) and (error.status, error.reason) == (status, reason)
        assert batcher.counters.error_count == (2 if counted else 0)

    asyncio.run(main())


def test_a_batch_whose_callers_all_went_is_withdrawn() -> None:
    async def main() -> None:
        queue = LanedQueue()
        batcher = Batcher(
            "d", queue, DeploymentCounters(), Observed(), max_batch_tokens=100, max_batch_size=256, failed=lambda: False
        )
        worker = HeldWorker()
        dispatcher = asyncio.ensure_future(batcher.run(lambda search_waiting: (worker, False)))
        first, second = _entries([5, 5]), _entries([5])
        for entries in (first, second):
            queue.push(entries)
            batcher.wake()
            await asyncio.sleep(0)
        assert len(worker.running) == 2
        first[0].future.cancel()
        await asyncio.sleep(0)
        assert worker.withdrawn == []  # one of its callers still waits
        first[1].future.cancel()
        await asyncio.sleep(0)
        assert worker.withdrawn == [worker.running[0]]
        worker.running[1].set_result(([(second[0].ids, np.ones(5, np.float32))], 0.01))
        await asyncio.sleep(0)
        assert second[0].future.result().indices.size == 5 and worker.withdrawn == [worker.running[0]]
        assert batcher.counters.error_count == 0
        dispatcher.cancel()

    asyncio.run(main())


def test_the_messages_are_elasticsearchs() -> None:
    full = messages.queue_full()
    assert isinstance(full, RejectedExecutionException) and full.to_dict()["type"] == "es_rejected_execution_exception"
    assert (messages.not_serving("d", "stopping").status, messages.not_serving("d", "stopping").reason) == (
        409,
        "Trained model [d] is [stopping]",
    )
    assert messages.not_allocated("e").reason == "Trained model deployment [e] is not allocated to any nodes"
    assert messages.not_allocated("e").status == 409
