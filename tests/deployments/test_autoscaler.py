"""The adaptive allocations scaler at run time (deployments/autoscaler.py) on a real deployment with real
workers: what it samples (the deployment's `stats_sample`), the bounds it reads, a request at zero waking
one allocation (once), an idle deployment scaled to zero, and a deployment without adaptive allocations
left alone.

The decisions themselves are scaling.py's (test_scaling.py); these check that the scaler feeds them the
deployment's figures and carries their answers out."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from elserve.deployments.adaptive import AdaptiveAllocations
from elserve.deployments.autoscaler import Autoscaler, ScalerTimings
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.states import DeploymentState
from tests.support.model_factory import build_bert_dir
from tests.support.waiting import wait_until_async

# The tick never comes within a test (the wake and sample tests drive the scaler themselves).
NO_TICK = ScalerTimings(interval_s=3600.0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_dir(tmp_path_factory.mktemp("model"))


def _deployment(model_dir: Path, timings: ScalerTimings = NO_TICK, **config) -> Deployment:
    async def source() -> Path:
        return model_dir

    options = {"deployment_id": "d", "model_id": "m", "number_of_allocations": 1, **config}
    return Deployment(DeploymentConfig(**options), source, timings=timings, query_lane=False)


def _adaptive(floor: int) -> AdaptiveAllocations:
    return AdaptiveAllocations(enabled=True, min_number_of_allocations=floor, max_number_of_allocations=2)


def _scaler(d: Deployment, timings: ScalerTimings = NO_TICK) -> Autoscaler:
    """A second scaler over the deployment, built as the deployment builds its own."""
    return Autoscaler(
        d.deployment_id,
        timings,
        adaptive=lambda: d.config.adaptive_allocations,
        sample=d.stats_sample,
        scale=lambda n: d.scale(n, within_capacity=True),
    )


@pytest.mark.parametrize(
    ("adaptive", "enabled"),
    [
        (None, False),
        (AdaptiveAllocations(enabled=False, min_number_of_allocations=1), False),
        (AdaptiveAllocations(enabled=True, min_number_of_allocations=0, max_number_of_allocations=3), True),
        (AdaptiveAllocations(enabled=True), True),
    ],
)
def test_bounds_are_the_deployments_adaptive_allocations(
    model_dir: Path, adaptive: AdaptiveAllocations | None, enabled: bool
) -> None:
    d = _deployment(model_dir, adaptive_allocations=adaptive)
    bounds = _scaler(d)._bounds()
    assert bounds.is_enabled is enabled
    if adaptive is not None:
        assert bounds == adaptive


def test_a_sample_is_the_deployments_counters_and_state(model_dir: Path) -> None:
    async def main() -> None:
        d = _deployment(model_dir)
        starting = d.stats_sample()
        assert starting.assignment_state == "starting" and starting.inference_count == 0
        await d.start()
        await d.infer(["one", "two", "three"], timeout=None)
        sample = d.stats_sample()
        assert sample.number_of_allocations == 1
        assert sample.inference_count == d.counters.inference_count == 3
        assert sample.pending_count == d.pending_requests == 0
        assert (sample.error_count, sample.timeout_count, sample.rejected_execution_count) == (0, 0, 0)
        assert sample.average_inference_time_ms == d.counters.average_inference_time_ms > 0
        assert sample.assignment_state == "started" and sample.routing_starting is False
        assert sample.time_s > starting.time_s
        await d.stop()

    asyncio.run(main())


def test_a_request_at_zero_wakes_one_allocation_once(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        d = _deployment(model_dir, number_of_allocations=0, adaptive_allocations=_adaptive(0))
        await d.start()
        assert d.state is DeploymentState.STARTED and d.allocations == []
        with caplog.at_level(logging.INFO, logger="elserve.deployments"):
            d.autoscaler.wake()
            d.autoscaler.wake()  # the first is in flight: no second allocation
            await wait_until_async(lambda: d.started_allocations == 1, "one allocation started")
        assert d.config.number_of_allocations == 1 and len(d.allocations) == 1
        waking = [r for r in caplog.records if "waking [d]" in r.getMessage()]
        assert [r.getMessage() for r in waking] == ["adaptive allocations scaler: waking [d] with one allocation"]
        await d.stop()

    asyncio.run(main())


def test_without_adaptive_allocations_a_request_at_zero_wakes_nothing(model_dir: Path) -> None:
    async def main() -> None:
        d = _deployment(model_dir, number_of_allocations=0)
        await d.start()
        d.autoscaler.wake()
        await asyncio.sleep(0)
        assert d.config.number_of_allocations == 0 and d.allocations == []
        await d.stop()

    asyncio.run(main())


def test_an_idle_deployment_is_scaled_to_zero_on_a_tick(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    timings = ScalerTimings(interval_s=0.1, scale_to_zero_after_s=0.3, scale_up_cooldown_s=0.0)

    async def main() -> None:
        d = _deployment(model_dir, timings, adaptive_allocations=_adaptive(0))
        with caplog.at_level(logging.INFO, logger="elserve.deployments"):
            await d.start()
            await wait_until_async(lambda: d.config.number_of_allocations == 0 and not d.allocations, "scaled to zero")
        assert d.state is DeploymentState.STARTED
        assert "adaptive allocations scaler: scaled [d] to [0] allocations." in [r.getMessage() for r in caplog.records]
        await d.stop()

    asyncio.run(main())


def test_a_minimum_keeps_an_idle_deployment_up(model_dir: Path) -> None:
    timings = ScalerTimings(interval_s=0.05, scale_to_zero_after_s=0.1, scale_up_cooldown_s=0.0)

    async def main() -> None:
        d = _deployment(model_dir, timings, adaptive_allocations=_adaptive(1))
        await d.start()
        scaler = _scaler(d, timings)
        decisions = asyncio.ensure_future(scaler.run())
        await asyncio.sleep(1.0)  # many ticks of both scalers, idle all along
        decisions.cancel()
        await asyncio.gather(decisions, return_exceptions=True)
        assert d.config.number_of_allocations == 1 and d.started_allocations == 1
        await d.stop()

    asyncio.run(main())
