"""Adaptive allocations at run time: sample a deployment every interval, apply the scaler's decision.

The decisions are `scaling.py`'s (Elasticsearch's algorithm, pure); this module only feeds it samples on
a timer and carries its answers out. What it reads and what it does are callables the deployment hands it,
so it knows no deployment type.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from elserve.deployments.adaptive import AdaptiveAllocations, ScalerTimings
from elserve.deployments.scaling import ScalerState, StatsSample, decide, on_request_at_zero

log = logging.getLogger("elserve.deployments")

_DISABLED = AdaptiveAllocations(enabled=False)


class Autoscaler:
    def __init__(
        self,
        deployment_id: str,
        timings: ScalerTimings,
        *,
        adaptive: Callable[[], AdaptiveAllocations | None],
        sample: Callable[[], StatsSample],
        scale: Callable[[int], Awaitable[None]],
    ) -> None:
        """`adaptive`: the deployment's settings now; `sample`: its stats now; `scale`: set its allocations
        (within what the node grants)."""
        self._deployment_id = deployment_id
        self._timings = timings
        self._adaptive = adaptive
        self._sample = sample
        self._scale = scale
        self._state = ScalerState()
        self._waking: asyncio.Task | None = None

    def _bounds(self) -> AdaptiveAllocations:
        return self._adaptive() or _DISABLED

    async def run(self) -> None:
        """Forever: every interval, one decision."""
        while True:
            await asyncio.sleep(self._timings.interval_s)
            sample = self._sample()
            wanted, self._state = decide(
                self._bounds(),
                sample,
                self._state,
                scale_to_zero_after_s=self._timings.scale_to_zero_after_s,
                scale_up_cooldown_s=self._timings.scale_up_cooldown_s,
            )
            if wanted is not None and wanted != sample.number_of_allocations:
                log.info("adaptive allocations scaler: scaled [%s] to [%d] allocations.", self._deployment_id, wanted)
                await self._scale(wanted)

    def wake(self) -> None:
        """A request found no allocation: ask for one (once), as Elasticsearch's `maybeStartAllocation`."""
        in_flight = self._waking is not None and not self._waking.done()
        wanted, self._state = on_request_at_zero(
            self._bounds(), self._state, now_s=time.monotonic(), scale_from_zero_in_flight=in_flight
        )
        if wanted is not None:
            log.info("adaptive allocations scaler: waking [%s] with one allocation", self._deployment_id)
            self._waking = asyncio.ensure_future(self._scale(wanted))
