"""Adaptive allocations at run time: sample a deployment every interval, apply the scaler's decision.

The decisions are `scaling.py`'s (Elasticsearch's algorithm, pure); this module
only feeds it samples on a timer and carries its answers out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from elserve.deployments.scaling import (
    DEFAULT_SCALE_TO_ZERO_AFTER_S,
    DEFAULT_SCALE_UP_COOLDOWN_S,
    TIME_INTERVAL_S,
    ScalerState,
    ScalingBounds,
    StatsSample,
    decide,
    on_request_at_zero,
)
from elserve.deployments.states import RoutingState

if TYPE_CHECKING:
    from elserve.deployments.deployment import Deployment

log = logging.getLogger("elserve.deployments")


@dataclass(frozen=True)
class ScalerTimings:
    """Elasticsearch's cluster settings `xpack.ml.trained_models.adaptive_allocations.*` (and the tick)."""

    interval_s: float = TIME_INTERVAL_S
    scale_to_zero_after_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S
    scale_up_cooldown_s: float = DEFAULT_SCALE_UP_COOLDOWN_S


class Autoscaler:
    def __init__(self, deployment: Deployment, timings: ScalerTimings) -> None:
        self._deployment = deployment
        self._timings = timings
        self._state = ScalerState()
        self._waking: asyncio.Task | None = None

    def _bounds(self) -> ScalingBounds:
        adaptive = self._deployment.config.adaptive_allocations
        if adaptive is None:
            return ScalingBounds(enabled=False)
        return ScalingBounds(adaptive.enabled, adaptive.min_number_of_allocations, adaptive.max_number_of_allocations)

    def _sample(self) -> StatsSample:
        d = self._deployment
        c = d.counters
        return StatsSample(
            time_s=time.monotonic(),
            number_of_allocations=d.config.number_of_allocations,
            inference_count=c.inference_count,
            pending_count=d.pending_requests,
            error_count=c.error_count,
            timeout_count=c.timeout_count,
            rejected_execution_count=c.rejected_execution_count,
            average_inference_time_ms=c.average_inference_time_ms,
            assignment_state=str(d.state),
            routing_starting=any(a.state is RoutingState.STARTING for a in d.allocations),
        )

    async def run(self) -> None:
        """Forever: every interval, one decision."""
        while True:
            await asyncio.sleep(self._timings.interval_s)
            wanted, self._state = decide(
                self._bounds(),
                self._sample(),
                self._state,
                scale_to_zero_after_s=self._timings.scale_to_zero_after_s,
                scale_up_cooldown_s=self._timings.scale_up_cooldown_s,
            )
            if wanted is not None and wanted != self._deployment.config.number_of_allocations:
                log.info(
                    "adaptive allocations scaler: scaled [%s] to [%d] allocations.",
                    self._deployment.deployment_id,
                    wanted,
                )
                await self._deployment.scale(wanted, within_capacity=True)

    def wake(self) -> None:
        """A request found no allocation: ask for one (once), as Elasticsearch's `maybeStartAllocation`."""
        in_flight = self._waking is not None and not self._waking.done()
        wanted, self._state = on_request_at_zero(
            self._bounds(), self._state, now_s=time.monotonic(), scale_from_zero_in_flight=in_flight
        )
        if wanted is not None:
            log.info("adaptive allocations scaler: waking [%s] with one allocation", self._deployment.deployment_id)
            self._waking = asyncio.ensure_future(self._deployment.scale(wanted, within_capacity=True))
