"""One allocation (deployments/allocation.py): the server's side of a real worker forked from a real model
parent. Its states, one batch at a time (or one per thread, beside each other), answers equal to the
encoder's, draining, a stop, a worker killed while it holds a batch, and a start that fails."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from elserve.deployments.allocation import Allocation, WorkerDied, WorkerStartError
from elserve.deployments.parent import ForkedWorker, ModelParents
from elserve.deployments.states import RoutingState
from elserve.runtime.encoder import Encoder
from elserve.runtime.tokenizer import Tokenizer
from tests.support.hold import held, wait_until_held
from tests.support.model_factory import build_bert_dir
from tests.support.unloadable_model import build_unloadable_dir

TEXTS = ["cats and dogs", "a longer text about cats, dogs and more words " * 3, "x"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def batch(model_dir: Path) -> list[np.ndarray]:
    return [np.asarray(e.ids) for e in Tokenizer.from_dir(model_dir).encode_batch(TEXTS)]


class Events:
    """What an allocation tells its deployment: it exited, a batch finished."""

    def __init__(self) -> None:
        self.exited: list[Allocation] = []
        self.freed = 0

    def on_exit(self, allocation: Allocation) -> None:
        self.exited.append(allocation)

    def on_free(self) -> None:
        self.freed += 1


def _spawner(parents: ModelParents, model_dir: Path, hold: Path | None = None):
    key = (model_dir, "exact")
    parents.hold(key, "test")

    async def spawn(num_threads: int) -> ForkedWorker:
        return await parents.fork(key, num_threads, None if hold is None else str(hold))

    return spawn


def _allocation(
    parents: ModelParents, model_dir: Path, hold: Path | None = None, threads: int = 1
) -> tuple[Allocation, Events]:
    events = Events()
    spawn = _spawner(parents, model_dir, hold)
    return Allocation(spawn, threads, on_exit=events.on_exit, on_free=events.on_free), events


async def _started(parents: ModelParents, model_dir: Path, hold: Path | None = None) -> tuple[Allocation, Events]:
    allocation, events = _allocation(parents, model_dir, hold)
    await allocation.start()
    return allocation, events


async def _held_batch(allocation: Allocation, batch: list[np.ndarray], hold: Path) -> asyncio.Future:
    """A batch sent, once the worker holds it (inside `held(hold)`)."""
    future = allocation.submit(batch)
    await asyncio.get_running_loop().run_in_executor(None, wait_until_held, hold)
    return future


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_batch_is_answered_as_the_encoder_answers_it_then_the_worker_stops(
    model_dir: Path, batch: list[np.ndarray]
) -> None:
    expected = Encoder.load(model_dir, num_threads=1).encode_ids(batch)

    async def main() -> None:
        parents = ModelParents()
        allocation, events = _allocation(parents, model_dir)
        assert allocation.state is RoutingState.STARTING and not allocation.can_take
        await allocation.start()
        assert allocation.state is RoutingState.STARTED and allocation.can_take
        assert allocation.pid is not None and _alive(allocation.pid)
        assert allocation.kernels  # what the parent measured, handed over in the worker's "ready"
        future = allocation.submit(batch)
        assert allocation.slots == 1  # one thread: one batch at a time
        assert allocation.in_flight == 1 and not allocation.can_take
        vectors, seconds = await future
        assert seconds > 0 and allocation.in_flight == 0 and allocation.can_take
        assert events.freed == 1 and allocation.freed_at > 0
        assert len(vectors) == len(expected)
        for (indices, weights), want in zip(vectors, expected, strict=True):
            np.testing.assert_array_equal(indices, want.indices)
            np.testing.assert_allclose(weights, want.weights, rtol=0, atol=1e-5)
        pid = allocation.pid
        await allocation.stop()
        assert allocation.state is RoutingState.STOPPED and not allocation.can_take
        assert not _alive(pid)
        assert allocation.reason is None  # a stop asked for is no failure
        await parents.release((model_dir, "exact"), "test")

    asyncio.run(main())


def test_a_worker_of_two_threads_runs_a_lone_batch_on_both_and_a_backlog_one_batch_a_thread(
    model_dir: Path, batch: list[np.ndarray]
) -> None:
    encoder = Encoder.load(model_dir, num_threads=1)
    expected = encoder.encode_ids(batch)
    # Long enough that a short batch sent after it, beside it, ends first only if it runs at once.
    long_batch = [e.ids for e in encoder.tokenize(["cats and dogs and more words " * 20] * 400)]  # ~0.1 s

    def check(answer: tuple, want: list) -> None:
        vectors, seconds = answer
        assert seconds > 0 and len(vectors) == len(want)
        for (indices, weights), one in zip(vectors, want, strict=True):
            np.testing.assert_array_equal(indices, one.indices)
            np.testing.assert_allclose(weights, one.weights, rtol=0, atol=1e-5)

    async def main() -> None:
        parents = ModelParents()
        allocation, _ = _allocation(parents, model_dir, threads=2)
        await allocation.start()
        assert allocation.slots == 2
        alone = allocation.submit(batch)  # nothing held, nothing waiting: on both threads
        assert allocation.in_flight == 1 and not allocation.can_take
        check(await asyncio.wait_for(alone, 300), expected)
        assert allocation.can_take
        ended: list[str] = []
        first = allocation.submit(long_batch, more_waiting=True)  # a backlog: one thread
        first.add_done_callback(lambda _: ended.append("long"))
        assert allocation.in_flight == 1 and allocation.can_take  # the other thread is free
        second = allocation.submit(batch)  # beside the first, though nothing waits behind it
        second.add_done_callback(lambda _: ended.append("short"))
        assert allocation.in_flight == 2 and not allocation.can_take
        bad = [np.asarray([0, 10**6])]  # an id past the vocabulary: the encoder's error, beside
        check(await asyncio.wait_for(second, 300), expected)
        assert allocation.can_take
        failing = allocation.submit(bad, more_waiting=True)
        with pytest.raises(RuntimeError, match="token ids must be in"):
            await asyncio.wait_for(failing, 300)
        check(await asyncio.wait_for(first, 300), encoder.encode_ids(long_batch))
        assert ended == ["short", "long"]  # the short batch did not wait for the long one
        assert allocation.in_flight == 0 and allocation.can_take
        await allocation.stop()
        await parents.release((model_dir, "exact"), "test")

    asyncio.run(main())


def test_a_killed_worker_fails_the_batch_it_holds(model_dir: Path, batch: list[np.ndarray], tmp_path: Path) -> None:
    hold = tmp_path / "hold"

    async def main() -> None:
        parents = ModelParents()
        allocation, events = await _started(parents, model_dir, hold)
        with held(hold):
            future = await _held_batch(allocation, batch, hold)
            os.kill(allocation.pid, signal.SIGKILL)
            with pytest.raises(WorkerDied, match=rf"worker process {allocation.pid} exited unexpectedly"):
                await asyncio.wait_for(future, 300)
        assert allocation.state is RoutingState.FAILED
        assert allocation.reason == f"worker process {allocation.pid} exited unexpectedly"
        assert events.exited == [allocation] and allocation.in_flight == 0
        await parents.release((model_dir, "exact"), "test")

    asyncio.run(main())


def test_drain_waits_for_the_held_batch_and_takes_no_other(
    model_dir: Path, batch: list[np.ndarray], tmp_path: Path
) -> None:
    hold = tmp_path / "hold"

    async def main() -> None:
        parents = ModelParents()
        allocation, _ = await _started(parents, model_dir, hold)
        with held(hold):
            future = await _held_batch(allocation, batch, hold)
            draining = asyncio.ensure_future(allocation.drain())
            await asyncio.sleep(0)
            assert not allocation.accepting and not allocation.can_take
            assert not draining.done()  # the batch is still held
        await asyncio.wait_for(draining, 300)
        vectors, _ = future.result()
        assert len(vectors) == len(batch)
        assert not allocation.can_take  # drained: it stays out of the dispatch
        await allocation.stop()
        assert allocation.state is RoutingState.STOPPED
        await parents.release((model_dir, "exact"), "test")

    asyncio.run(main())


def test_a_model_that_cannot_load_fails_the_start_with_its_reason(tmp_path: Path) -> None:
    broken = build_unloadable_dir(tmp_path / "broken")

    async def main() -> None:
        parents = ModelParents()
        allocation, events = _allocation(parents, broken)
        with pytest.raises(WorkerStartError) as failed:
            await allocation.start()
        assert allocation.state is RoutingState.FAILED
        assert allocation.reason == str(failed.value)
        assert allocation.reason.startswith("ModelFormatError: ")  # the parent's load error, as it raised it
        assert not allocation.can_take and events.exited == []
        await parents.release((broken, "exact"), "test")

    asyncio.run(main())
