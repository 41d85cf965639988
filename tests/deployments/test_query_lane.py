"""A deployment's query lane (deployments/query_lane.py) with real workers forked from a real model parent:
started once on demand at normal priority, a query on all its threads or on one, replaced after it dies,
given up when it cannot start."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable
from pathlib import Path

import numpy as np
import pytest

from elserve.deployments.parent import ForkedWorker, ModelParents
from elserve.deployments.query_lane import QueryLane
from elserve.deployments.states import RoutingState
from elserve.runtime.encoder import Encoder
from elserve.runtime.tokenizer import Tokenizer
from tests.support.model_factory import build_bert_dir
from tests.support.unloadable_model import build_unloadable_dir
from tests.support.waiting import wait_until_async

HANG_S = 300  # a bound against a hang only


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_dir(tmp_path_factory.mktemp("model"))


class Lane:
    """A query lane as its deployment wires it: forks from the model's parent, runs its start as a task,
    counts how often it said it is free (the dispatcher would look again)."""

    def __init__(self, model_dir: Path, *, enabled: bool = True, threads: int = 1) -> None:
        self.key = (model_dir, "exact")
        self.parents = ModelParents()
        self.parents.hold(self.key, self)
        self.forks: list[int] = []
        self.frees = 0
        self.tasks: list[asyncio.Future] = []
        self.busy = False  # whether the deployment's allocations run batches
        self.lane = QueryLane(
            "d", self._fork, self._free, self._spawn, enabled=enabled, threads=lambda: threads, busy=lambda: self.busy
        )

    async def _fork(self, num_threads: int) -> ForkedWorker:
        self.forks.append(num_threads)
        return await self.parents.fork(self.key, num_threads, None)

    def _free(self) -> None:
        self.frees += 1

    def _spawn(self, start: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(start))

    async def close(self) -> None:
        for allocation in self.lane.workers():
            await allocation.stop()
        self.lane.forget()
        await self.parents.release(self.key, self)


def test_a_disabled_lane_starts_nothing(model_dir: Path) -> None:
    async def main() -> None:
        lane = Lane(model_dir, enabled=False)
        lane.lane.ensure()
        assert lane.lane.allocation is None and lane.forks == [] and lane.tasks == []
        assert await lane.lane.wait(HANG_S) is False
        assert lane.lane.ready() is None and lane.lane.running_pid is None and lane.lane.workers() == []

    asyncio.run(main())


def test_the_lane_starts_once_with_one_thread_at_normal_priority(model_dir: Path) -> None:
    async def main() -> None:
        lane = Lane(model_dir)
        lane.lane.ensure()
        first = lane.lane.allocation
        assert first is not None and first.state is RoutingState.STARTING
        assert lane.lane.running_pid is None  # not started yet: nothing to measure
        lane.lane.ensure()  # starting already: no second worker
        assert lane.lane.allocation is first
        assert await lane.lane.wait(HANG_S) is True
        assert lane.forks == [1]
        assert lane.lane.ready() is first and lane.lane.running_pid == first.pid
        assert lane.lane.workers() == [first]
        assert first.nice == 0
        assert os.getpriority(os.PRIO_PROCESS, first.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        assert lane.frees >= 1  # started: the dispatcher was told to look again
        await lane.close()
        assert lane.lane.allocation is None

    asyncio.run(main())


def test_a_lane_of_two_threads_runs_a_query_on_both_while_idle_and_on_one_while_the_allocations_run(
    model_dir: Path,
) -> None:
    query = [np.asarray(e.ids) for e in Tokenizer.from_dir(model_dir).encode_batch(["what do cats eat"])]
    want = Encoder.load(model_dir, num_threads=1).encode_ids(query)[0]

    async def answer(future: asyncio.Future) -> None:
        [(indices, weights)], _ = await asyncio.wait_for(future, HANG_S)
        np.testing.assert_array_equal(indices, want.indices)
        np.testing.assert_allclose(weights, want.weights, rtol=0, atol=1e-5)

    async def main() -> None:
        lane = Lane(model_dir, threads=2)
        lane.lane.ensure()
        assert await lane.lane.wait(HANG_S) is True
        worker = lane.lane.allocation
        assert worker is not None and lane.forks == [2] and worker.slots == 2
        alone = worker.submit(query)  # an idle deployment: the query on both threads
        assert not worker.can_take
        await answer(alone)
        lane.busy = True
        beside = worker.submit(query)  # bulk runs: one thread, the other left for the next query
        assert worker.can_take
        await answer(beside)
        await lane.close()

    asyncio.run(main())


def test_a_lane_that_dies_is_dropped_and_the_next_ensure_starts_another(model_dir: Path) -> None:
    async def main() -> None:
        lane = Lane(model_dir)
        lane.lane.ensure()
        assert await lane.lane.wait(HANG_S)
        dead = lane.lane.allocation
        assert dead is not None
        frees = lane.frees
        os.kill(dead.pid, signal.SIGKILL)
        await wait_until_async(lambda: lane.lane.allocation is None, "the dead lane dropped")
        assert lane.lane.allocation is None and lane.lane.ready() is None
        assert dead.state is RoutingState.FAILED and lane.frees > frees
        lane.lane.ensure()
        assert await lane.lane.wait(HANG_S)
        assert lane.lane.allocation is not dead and lane.lane.running_pid not in (None, dead.pid)
        assert lane.forks == [1, 1]
        await lane.close()

    asyncio.run(main())


def test_a_lane_that_cannot_start_is_given_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = build_unloadable_dir(tmp_path / "broken")

    async def main() -> None:
        lane = Lane(broken)
        with caplog.at_level(logging.WARNING, logger="elserve.deployments"):
            lane.lane.ensure()
            assert await lane.lane.wait(HANG_S) is False
        assert lane.lane.enabled is False and lane.lane.allocation is None
        assert any(
            "deployment [d]: query lane did not start: ModelFormatError" in r.getMessage() for r in caplog.records
        )
        lane.lane.ensure()  # given up: queries keep going to the allocations
        assert lane.forks == [1] and lane.lane.allocation is None
        await lane.parents.release(lane.key, lane)

    asyncio.run(main())


def test_wait_gives_up_after_its_timeout_while_the_lane_starts(model_dir: Path) -> None:
    async def main() -> None:
        never = asyncio.Event()

        async def fork_that_waits(num_threads: int) -> ForkedWorker:
            await never.wait()  # a start that has not finished (it is cancelled below)
            raise AssertionError("unreachable")

        tasks: list[asyncio.Future] = []
        lane = QueryLane(
            "d", fork_that_waits, lambda: None, lambda start: tasks.append(asyncio.ensure_future(start)), enabled=True
        )
        lane.ensure()
        assert await lane.wait(0.01) is False
        assert lane.allocation is not None and lane.allocation.state is RoutingState.STARTING
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
