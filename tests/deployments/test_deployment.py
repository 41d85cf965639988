"""A deployment with real worker processes: batching, backpressure, faults, scaling."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from elserve.deployments.adaptive import AdaptiveAllocations, ScalerTimings
from elserve.deployments.batch_hold import HOLD_FILE_ENV
from elserve.deployments.capacity import machine_processors
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.states import AllocationState, DeploymentState
from elserve.errors import RejectedExecutionException, StatusException
from elserve.runtime import Encoder
from tests.support.hold import held, wait_until_held

# Requests whose timeout is not under test have none (`timeout=None`): their encoding takes what the machine
# takes (on a loaded 2-core machine several seconds for the bigger ones), and no test may time real work.
TEXTS = [f"text number {i} about {'cats' if i % 2 else 'dogs'} and " + "more words " * (i % 40) for i in range(64)]


def _deployment(model_dir: Path, precision: str = "exact", **config) -> Deployment:
    async def source() -> Path:
        return model_dir

    options = {"deployment_id": "d", "model_id": "m", "number_of_allocations": 1, **config}
    timings = options.pop("timings", ScalerTimings())
    return Deployment(DeploymentConfig(**options), source, max_batch_tokens=2048, timings=timings, precision=precision)


@pytest.fixture
def hold_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file that holds the workers this test starts (see tests/support/hold.py)."""
    path = tmp_path / "hold"
    monkeypatch.setenv(HOLD_FILE_ENV, str(path))
    return path


@pytest.fixture(scope="module")
def reference(splade_model_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    encoder = Encoder.load(splade_model_dir, num_threads=1)
    return {t: (v.indices, v.weights) for t, (v, _) in zip(TEXTS, encoder.encode(TEXTS), strict=True)}


def _same(result, expected) -> None:
    indices, weights = expected
    np.testing.assert_array_equal(np.sort(result.vector.indices), np.sort(indices))
    order_r, order_e = np.argsort(result.vector.indices), np.argsort(indices)
    np.testing.assert_allclose(result.vector.weights[order_r], weights[order_e], atol=1e-4)


def test_concurrent_requests_match_single_requests(splade_model_dir: Path, reference: dict) -> None:
    async def main() -> None:
        d = _deployment(splade_model_dir, number_of_allocations=2)
        await d.start()
        assert d.state is DeploymentState.STARTED
        assert AllocationState.of(d.started_allocations, 2) is AllocationState.FULLY_ALLOCATED
        # 16 concurrent clients, each several texts: batches mix requests and spread over both workers.
        groups = [TEXTS[i::16] for i in range(16)]
        answers = await asyncio.gather(*(d.infer(g, timeout=None) for g in groups))
        for group, results in zip(groups, answers, strict=True):
            assert len(results) == len(group)
            for text, result in zip(group, results, strict=True):
                _same(result, reference[text])
        assert d.counters.inference_count == len(TEXTS)
        await d.stop()

    asyncio.run(main())


def test_full_queue_is_refused_at_once(splade_model_dir: Path, hold_file: Path) -> None:
    async def main() -> None:
        d = _deployment(splade_model_dir, queue_capacity=2)
        await d.start()
        with held(hold_file):  # nothing finishes until the refusal is seen
            first = [asyncio.ensure_future(d.infer(["many words here " * 120] * 40, timeout=None)) for _ in range(2)]
            await asyncio.sleep(0)  # let both be admitted
            with pytest.raises(RejectedExecutionException) as refused:
                await d.infer(["one more"], timeout=None)
        assert refused.value.status == 429
        assert refused.value.reason == "inference process queue is full. Unable to execute command"
        assert d.counters.rejected_execution_count == 1
        done = await asyncio.gather(*first)
        assert all(len(r) == 40 for r in done)
        await d.stop()

    asyncio.run(main())


def test_an_idle_2x1_deployment_runs_a_query_on_its_lanes_two_threads(splade_model_dir: Path, hold_file: Path) -> None:
    if machine_processors() < 2:
        pytest.skip("the lane has the machine's threads at most: one here")

    async def main() -> None:
        d = _deployment(splade_model_dir, number_of_allocations=2, threads_per_allocation=1)
        await d.start()
        await d.infer(TEXTS[:16], timeout=None)  # ingest: the deployment starts its query lane
        assert await d.query_lane.wait(300) is True
        lane = d.query_lane.allocation
        assert lane is not None and lane.num_threads == 2  # what the two allocations hold together
        with held(hold_file):
            query = asyncio.ensure_future(d.infer(["what do cats eat"], timeout=None))
            await asyncio.get_running_loop().run_in_executor(None, wait_until_held, hold_file)
            # On the lane's two threads (every slot of it held), not on an allocation's one.
            assert lane.in_flight == 1 and not lane.can_take
            assert not any(a.in_flight for a in d.allocations)
        assert len(await query) == 1
        await d.stop()

    asyncio.run(main())


def test_timeout_answers_and_frees_the_slot(splade_model_dir: Path, hold_file: Path) -> None:
    async def main() -> None:
        d = _deployment(splade_model_dir)
        await d.start()
        with held(hold_file), pytest.raises(TimeoutError):
            await d.infer(["many words here " * 120] * 200, timeout=0.05)
        assert d.counters.timeout_count == 1
        assert d.pending_requests == 0
        assert len(await d.infer(["still serving"], timeout=None)) == 1
        await d.stop()

    asyncio.run(main())


def test_killed_worker_loses_no_request(splade_model_dir: Path, reference: dict, hold_file: Path) -> None:
    async def main() -> None:
        d = _deployment(splade_model_dir, number_of_allocations=2)
        await d.start()
        with held(hold_file):  # both workers hold a batch when one is killed
            requests = [asyncio.ensure_future(d.infer(TEXTS, timeout=None)) for _ in range(6)]
            await asyncio.get_running_loop().run_in_executor(None, wait_until_held, hold_file)
            while d.allocations[0].in_flight == 0:
                await asyncio.sleep(0.01)
            os.kill(d.allocations[0].pid, signal.SIGKILL)
        answers = await asyncio.gather(*requests, return_exceptions=True)
        for answer in answers:
            assert not isinstance(answer, BaseException), answer
            for text, result in zip(TEXTS, answer, strict=True):
                _same(result, reference[text])
        for _ in range(6000):  # back to fully allocated (the bound only guards against a hang)
            if d.started_allocations == 2:
                break
            await asyncio.sleep(0.05)
        assert d.started_allocations == 2
        await d.stop()

    asyncio.run(main())


def test_scaling_under_load_loses_nothing(splade_model_dir: Path) -> None:
    async def main() -> None:
        d = _deployment(splade_model_dir)
        await d.start()
        load = [asyncio.ensure_future(d.infer(TEXTS, timeout=None)) for _ in range(8)]
        await d.scale(2)
        assert d.started_allocations == 2
        await d.scale(1)
        assert d.started_allocations == 1
        answers = await asyncio.gather(*load)
        assert all(len(a) == len(TEXTS) for a in answers)
        await d.stop()

    asyncio.run(main())


def test_bad_model_files_fail_the_deployment(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")

    async def main() -> None:
        d = _deployment(broken)
        await d.start()
        assert d.state is DeploymentState.FAILED
        assert d.reason
        with pytest.raises(StatusException) as refused:
            await d.infer(["x"], timeout=1)
        assert refused.value.status == 409

    asyncio.run(main())


def test_adaptive_scales_to_zero_and_wakes(splade_model_dir: Path) -> None:
    # The cooldown keeps the woken allocation up while the assertions run, as it does in Elasticsearch.
    timings = ScalerTimings(interval_s=0.2, scale_to_zero_after_s=0.5, scale_up_cooldown_s=30.0)

    async def main() -> None:
        d = _deployment(
            splade_model_dir,
            adaptive_allocations=AdaptiveAllocations(
                enabled=True, min_number_of_allocations=0, max_number_of_allocations=2
            ),
            timings=timings,
        )
        await d.start()
        assert d.started_allocations == 1
        for _ in range(3000):  # scaled to zero (the bound, 5 min, only guards against a hang)
            if d.config.number_of_allocations == 0 and not d.allocations:
                break
            await asyncio.sleep(0.1)
        assert d.config.number_of_allocations == 0 and d.started_allocations == 0
        assert d.state is DeploymentState.STARTED
        woken = await d.infer(["wake up"], timeout=None)  # waits for the new allocation
        assert len(woken) == 1
        assert d.config.number_of_allocations == 1
        await d.stop()

    asyncio.run(main())


def test_approximate_precision_is_served_and_agrees(splade_model_dir: Path, reference: dict) -> None:
    from elserve.runtime import SparseVector
    from elserve.runtime.agreement import agreement
    from elserve.runtime.cpu import bf16_refusal

    if (refusal := bf16_refusal()) is not None:
        pytest.skip(refusal)  # a CPU without native bfloat16: bf16 is refused (tests/runtime/test_cpu.py)

    async def main() -> None:
        d = _deployment(splade_model_dir, precision="bf16")
        await d.start()
        results = await d.infer(TEXTS, timeout=None)
        await d.stop()
        found = agreement([SparseVector(*reference[t]) for t in TEXTS], [r.vector for r in results])
        assert found.overlap_mean >= 0.95

    asyncio.run(main())
