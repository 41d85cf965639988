"""The front half of a deployment (deployments/front.py), with a backend that implements only the contract:
admission (429 at once when full), answers in input order, the states a request is refused in (409 with
Elasticsearch's messages), waiting for `started` / `fully_allocated`, a timeout, and a stop that drains.

The backend here runs each batch in the test's event loop (its texts' ids come back as indices), holding
batches while the test says so; the two real backends are test_deployment.py's and rayserve/'s.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from elserve.deployments.batcher import BatchAnswer
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.front import DeploymentFront
from elserve.deployments.memory import DeploymentMemory
from elserve.deployments.states import DeploymentState, RoutingState
from elserve.errors import RejectedExecutionException, StatusException
from tests.support.model_factory import build_bert_dir
from tests.support.waiting import wait_until_async

HANG_S = 60.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_dir(tmp_path_factory.mktemp("model"))


class _Route:
    def __init__(self, state: RoutingState) -> None:
        self.state = state


class InlineBackend(DeploymentFront):
    """Allocations that are a count, and one worker that answers a batch in the event loop; while the test
    holds it (`hold`), the worker is busy and texts wait in the queue."""

    slots = 1

    def __init__(self, model_dir: Path, **config) -> None:
        async def source() -> Path:
            return model_dir

        options = {"deployment_id": "d", "model_id": "m", "number_of_allocations": 1, **config}
        super().__init__(DeploymentConfig(**options), source, max_batch_tokens=64, max_batch_size=8, observer=None)
        self.running = 0
        self.held = False
        self.ended = False

    def hold(self) -> None:
        self.held = True

    def let_go(self) -> None:
        self.held = False
        self.batcher.wake()

    async def _begin(self) -> None:
        self.running = min(1, self.config.number_of_allocations)
        self.state = DeploymentState.STARTED
        self._notify()

    async def _end(self) -> None:
        self.ended = True

    def kill(self) -> None:
        self.running = 0

    async def _resize(self, n: int) -> None:
        self.config = self.config.with_allocations(n)

    def _pick(self, search_waiting: bool) -> tuple[InlineBackend, bool] | None:
        return None if self.held else (self, False)

    def submit(self, batch: list[np.ndarray], more_waiting: bool = False) -> asyncio.Future[BatchAnswer]:
        future: asyncio.Future[BatchAnswer] = asyncio.get_running_loop().create_future()
        future.set_result(([(ids, np.ones(len(ids), np.float32)) for ids in batch], 0.001))
        return future

    def withdraw(self, future: asyncio.Future[BatchAnswer]) -> None:
        pass  # answered at once: nothing runs to stop

    @property
    def allocations(self) -> list[_Route]:
        return [_Route(RoutingState.STARTED)] * self.running

    @property
    def started_allocations(self) -> int:
        return self.running

    def memory_per(self) -> tuple[int, int]:
        return 0, 0

    def memory(self) -> DeploymentMemory | None:
        return None

    def node_shares(self) -> None:
        return None


def test_texts_are_answered_in_input_order(model_dir: Path) -> None:
    async def main() -> None:
        d = InlineBackend(model_dir)
        await d.start()
        texts = ["word " * n for n in (1, 20, 3, 200)]  # the last is cut at the model's 64 positions
        results = await d.infer(texts, timeout=HANG_S)
        assert d.tokenizer is not None
        for text, result, encoded in zip(texts, results, d.tokenizer.encode_batch(texts), strict=True):
            np.testing.assert_array_equal(result.vector.indices, encoded.ids)
            assert result.is_truncated is encoded.is_truncated, text
        assert results[0].is_truncated is False and results[-1].is_truncated is True
        assert d.counters.inference_count == 4 and d.pending_requests == 0

    asyncio.run(main())


def test_a_full_queue_refuses_at_once(model_dir: Path) -> None:
    async def main() -> None:
        d = InlineBackend(model_dir, queue_capacity=1)
        await d.start()
        d.hold()
        first = asyncio.ensure_future(d.infer(["held"], timeout=HANG_S))
        await wait_until_async(lambda: d.pending_requests == 1, "the first request inside", timeout=HANG_S)
        with pytest.raises(RejectedExecutionException) as refused:
            await d.infer(["refused"], timeout=HANG_S)
        assert refused.value.reason == "inference process queue is full. Unable to execute command"
        assert d.counters.rejected_execution_count == 1
        d.let_go()
        assert len(await first) == 1

    asyncio.run(main())


def test_a_deployment_not_started_failed_or_stopping_refuses_with_409(model_dir: Path) -> None:
    async def main() -> None:
        d = InlineBackend(model_dir)
        with pytest.raises(StatusException) as starting:
            await d.infer(["x"], timeout=HANG_S)
        assert (starting.value.status, starting.value.reason) == (
            409,
            "Trained model deployment [d] is not allocated to any nodes",
        )
        await d.start()
        d.hold()
        queued = asyncio.ensure_future(d.infer(["a"] * 20, timeout=HANG_S))
        await wait_until_async(lambda: d.queued_texts == 20, "texts waiting", timeout=HANG_S)
        d.fail("the workers are gone")
        with pytest.raises(StatusException, match=r"^Trained model \[d\] is \[failed\]$"):
            await queued
        with pytest.raises(StatusException, match=r"^Trained model \[d\] is \[failed\]$"):
            await d.infer(["x"], timeout=HANG_S)
        assert (d.state, d.reason, d.failure_status) == (DeploymentState.FAILED, "the workers are gone", 500)

    asyncio.run(main())


def test_wait_until_fully_allocated(model_dir: Path) -> None:
    async def main() -> None:
        d = InlineBackend(model_dir, number_of_allocations=2)
        assert await d.wait_started(0.05) is False
        await d.start()
        assert await d.wait_started(HANG_S) is True
        assert await d.wait_until("fully_allocated", 0.05) is False
        d.running = 2
        d._notify()
        assert await d.wait_until("fully_allocated", HANG_S) is True

    asyncio.run(main())


def test_a_timeout_is_counted_and_the_request_released(model_dir: Path) -> None:
    async def main() -> None:
        d = InlineBackend(model_dir)
        await d.start()
        d.hold()
        with pytest.raises(TimeoutError):
            await d.infer(["slow"], timeout=0.05)
        assert d.counters.timeout_count == 1 and d.pending_requests == 0

    asyncio.run(main())


def test_stop_answers_what_is_inside_then_refuses(model_dir: Path) -> None:
    async def main() -> None:
        d = InlineBackend(model_dir)
        await d.start()
        d.hold()
        inside = asyncio.ensure_future(d.infer(["inside"], timeout=HANG_S))
        await wait_until_async(lambda: d.pending_requests == 1, "the request inside", timeout=HANG_S)
        stopping = asyncio.ensure_future(d.stop())
        await wait_until_async(lambda: d.state is DeploymentState.STOPPING, "stopping", timeout=HANG_S)
        with pytest.raises(StatusException, match=r"^Trained model \[d\] is \[stopping\]$"):
            await d.infer(["late"], timeout=HANG_S)
        assert not d.ended  # it waits for the request inside
        d.let_go()
        assert len(await inside) == 1
        await asyncio.wait_for(stopping, HANG_S)
        assert d.ended

    asyncio.run(main())
