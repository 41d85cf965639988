"""A deployment's query lane: one worker at normal OS priority that serves search-like batches only
(the rule is lanes.py's); the allocations run at a lower priority, so that a query does not wait for
a bulk batch to end. While an allocation runs a batch, each query runs on one of the lane's threads
(two threads on one query would wait for each other at every operation while the allocations' threads
hold the cores: docs/performance.md). On an idle deployment a query runs on all the threads of the
lane or of an allocation, whichever has more (`Deployment._pick`): the lane has as many as the
deployment's allocations hold together, so that a query on an idle 2 x 1 deployment of a big model
uses both cores, as one on 1 x 2 does.

It starts when the deployment first sees ingest (a deployment that only serves search does not
pay a process for it). A lane that dies is dropped and the next ingest request starts another; its
batches are retried by the deployment. A lane that cannot start is given up: queries keep going to
the allocations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from elserve.deployments.allocation import Allocation, Spawner, WorkerStartError
from elserve.deployments.states import RoutingState

log = logging.getLogger("elserve.deployments")


class QueryLane:
    def __init__(
        self,
        deployment_id: str,
        fork: Spawner,
        on_free: Callable[[], None],
        spawn: Callable[[Awaitable[None]], None],
        *,
        enabled: bool,
        threads: Callable[[], int] = lambda: 1,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        """`on_free`: the lane is free or gone (the dispatcher looks again); `spawn`: runs its start
        as one of the deployment's tasks (cancelled when it stops); `threads`: how many the lane
        starts with; `busy`: whether an allocation runs a batch (a query then gets one thread)."""
        self.enabled = enabled
        self._threads = threads
        self._busy = busy
        self.allocation: Allocation | None = None
        self._deployment_id = deployment_id
        self._fork = fork
        self._on_free = on_free
        self._spawn = spawn
        self._settled = asyncio.Event()

    def ensure(self) -> None:
        """Start the lane unless it runs, is starting, or is not wanted: at normal priority."""
        if self.allocation is not None or not self.enabled:
            return
        self._settled.clear()
        self.allocation = Allocation(
            self._fork, max(1, self._threads()), on_exit=self._exited, on_free=self._on_free, beside=self._busy
        )
        self._spawn(self._start(self.allocation))

    async def _start(self, allocation: Allocation) -> None:
        try:
            await allocation.start()
        except WorkerStartError as exc:
            log.warning("deployment [%s]: query lane did not start: %s", self._deployment_id, exc)
            self.enabled = False
            self.allocation = None
        self._on_free()
        self._settled.set()

    async def wait(self, timeout: float | None) -> bool:
        """Until the lane has started (or could not); False if none was started or `timeout` ran out."""
        if self.allocation is None:
            return False
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return self.allocation is not None and self.allocation.state is RoutingState.STARTED

    def ready(self) -> Allocation | None:
        """The lane's worker if it can take a batch now."""
        lane = self.allocation
        return lane if lane is not None and lane.can_take else None

    @property
    def running_pid(self) -> int | None:
        """The lane worker's pid once it has started (what memory is measured of)."""
        lane = self.allocation
        return lane.pid if lane is not None and lane.state is RoutingState.STARTED else None

    def workers(self) -> list[Allocation]:
        return [] if self.allocation is None else [self.allocation]

    def forget(self) -> None:
        """The deployment stopped it (with its allocations)."""
        self.allocation = None

    def _exited(self, allocation: Allocation) -> None:
        if self.allocation is allocation:
            self.allocation = None
        self._on_free()
