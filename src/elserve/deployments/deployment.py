"""The local backend of a deployment: its allocations are worker processes on this machine, forked from
its model's parent (parent.py), plus a query lane (query_lane.py); the adaptive allocations scaler
(autoscaler.py) resizes them within what the node grants (capacity.py).

The front half (admission, queue, dispatcher, messages) is front.py's; this module implements only the
backend's contract there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from elserve.deployments import batch_hold
from elserve.deployments.adaptive import DEFAULT_TIMINGS, ScalerTimings
from elserve.deployments.allocation import Allocation, WorkerStartError
from elserve.deployments.autoscaler import Autoscaler
from elserve.deployments.batcher import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from elserve.deployments.capacity import machine_processors
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.front import DeploymentFront, Observer
from elserve.deployments.memory import DeploymentMemory
from elserve.deployments.memory_account import MemoryAccount, Processes
from elserve.deployments.parent import ForkedWorker, ModelParents
from elserve.deployments.priority import Priority
from elserve.deployments.query_lane import QueryLane
from elserve.deployments.states import DeploymentState, RoutingState

log = logging.getLogger("elserve.deployments")

# Allocations run at this OS priority (nice), below the query lane and the HTTP server, so that a
# query preempts bulk work on a busy machine instead of waiting for its batch to end.
ALLOCATION_NICE = 10

# Asked for `n` allocations, how many may run (the node's capacity decides; see capacity.py).
Grant = Callable[["Deployment", int], int]


def _unbounded(deployment: Deployment, n: int) -> int:
    return n


class Deployment(DeploymentFront):
    def __init__(
        self,
        config: DeploymentConfig,
        model_dir: Callable[[], Awaitable[Path]],
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        timings: ScalerTimings = DEFAULT_TIMINGS,
        observer: Observer | None = None,
        precision: str = "exact",
        grant: Grant = _unbounded,
        query_lane: bool = True,
        on_released: Callable[[], None] | None = None,
        parents: ModelParents | None = None,
    ) -> None:
        """`parents`: the server's model parents, shared by the deployments of one model (parent.py);
        by default this deployment's own."""
        super().__init__(
            config, model_dir, max_batch_tokens=max_batch_tokens, max_batch_size=max_batch_size, observer=observer
        )
        self._allocations: list[Allocation] = []
        self._tasks: set[asyncio.Task] = set()
        self._letting_go: asyncio.Future | None = None  # a failed deployment stopping its workers
        self._scaling = asyncio.Lock()  # one change of allocations at a time
        self.autoscaler = Autoscaler(
            config.deployment_id,
            timings,
            adaptive=lambda: self.config.adaptive_allocations,
            sample=self.stats_sample,
            scale=lambda n: self.scale(n, within_capacity=True),
        )
        self.precision = precision
        self._grant = grant
        self._on_released = on_released or (lambda: None)  # allocations stopped: room for others
        self.query_lane = QueryLane(
            config.deployment_id,
            self._fork_worker,
            self.batcher.wake,
            self._spawn,
            enabled=query_lane and config.priority is not Priority.LOW,
            threads=self._lane_threads,
            busy=self._allocations_busy,
        )
        self._parents = parents or ModelParents()
        self._memory = MemoryAccount(self._processes)

    @property
    def allocations(self) -> list[Allocation]:
        return self._allocations

    @property
    def started_allocations(self) -> int:
        return sum(1 for a in self.allocations if a.state is RoutingState.STARTED and a.accepting)

    def node_shares(self) -> None:
        """All of it on this server's node (backend.ServedDeployment)."""
        return None

    # -- lifecycle ---------------------------------------------------------------------------

    def _model_fetched(self) -> None:
        self._parents.hold(self._parent_key, self)

    async def _begin(self) -> None:
        await self.scale(self.config.number_of_allocations)
        if self.config.number_of_allocations == 0:
            self._mark_started()  # scaled to zero: started, with no allocation until a request comes

    def _mark_started(self) -> None:
        """Started once an allocation runs (or none is asked for); until then, `starting` as an unassigned
        Elasticsearch deployment."""
        if self.state is DeploymentState.STARTING:
            self.state = DeploymentState.STARTED
            self._notify()
            self._spawn(self.autoscaler.run())

    def _on_failed(self) -> None:
        if self._model_dir is not None and self._letting_go is None:
            self._letting_go = asyncio.ensure_future(self._let_go())

    async def _let_go(self) -> None:
        """A failed deployment runs nothing: its workers stop (after the batches they hold) and its model's
        parent is released, then the node's room goes to the others. Elasticsearch stops a route's
        process when it fails (`TrainedModelAssignmentNodeService.handleLoadFailure`), and a failed
        route holds no memory (`RoutingState.consumesMemory`); the deployment stays, `failed` with its
        reason, until it is stopped or replaced."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        running = [a for a in self._workers() if a.state.consumes_resources]  # a failed one has no process
        await asyncio.gather(*(a.stop() for a in running), return_exceptions=True)
        self.allocations.clear()
        self.query_lane.forget()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        assert self._model_dir is not None
        await self._parents.release(self._parent_key, self)
        self._notify()
        self._on_released()

    def _drains_on_stop(self) -> bool:
        # A failed deployment's workers are stopped already (`_let_go`): nothing is left to answer.
        return self._letting_go is None and self.started_allocations > 0

    async def _end(self) -> None:
        if self._letting_go is not None:
            await asyncio.gather(self._letting_go, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(a.stop() for a in self._workers()), return_exceptions=True)
        self.allocations.clear()
        self.query_lane.forget()
        if self._model_dir is not None:
            await self._parents.release(self._parent_key, self)  # the last deployment of the model ends its parent

    def kill(self) -> None:
        if self.state is not DeploymentState.FAILED:
            self.state = DeploymentState.STOPPING
        self._notify()
        for allocation in self._workers():
            allocation.kill()
        if self._model_dir is not None:
            self._parents.release_now(self._parent_key, self)

    def _workers(self) -> list[Allocation]:
        """Every worker it runs: its allocations and its query lane."""
        return [*self.allocations, *self.query_lane.workers()]

    @property
    def parent_pid(self) -> int | None:
        """The pid of the process its workers are forked from (its model's parent), while it runs."""
        return None if self._model_dir is None else self._parents.pid(self._parent_key)

    @property
    def _parent_key(self) -> tuple[Path, str]:
        assert self._model_dir is not None
        return self._model_dir, self.precision

    async def _fork_worker(self, num_threads: int) -> ForkedWorker:
        return await self._parents.fork(self._parent_key, num_threads, batch_hold.configured())

    # -- scaling -----------------------------------------------------------------------------

    async def scale(self, n: int, *, within_capacity: bool = False) -> None:
        """Ask for `n` allocations; start or drain-and-stop workers until as many as the node grants are live.

        What is not granted stays unassigned (the target stays `n`), unless `within_capacity`
        (the adaptive scaler), which sets the target to what fits.
        """
        async with self._scaling:
            if self.state is DeploymentState.FAILED:
                return  # it runs nothing any more (see `_let_go`)
            await self._scale(n, within_capacity)

    async def _scale(self, n: int, within_capacity: bool = False) -> None:
        assert self._model_dir is not None
        granted = self._grant(self, n)
        self.config = self.config.with_allocations(granted if within_capacity else n)
        live = [a for a in self.allocations if a.accepting and a.state is not RoutingState.FAILED]
        if len(live) < granted:
            new = [self._new_allocation() for _ in range(granted - len(live))]
            self.allocations.extend(new)
            results = await asyncio.gather(*(a.start() for a in new), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            self.batcher.wake()
            self._notify()
            if failures:
                raise failures[0]
            if self.state is DeploymentState.STARTING and self.started_allocations:
                self._mark_started()
        for allocation in live[granted:]:
            await allocation.stop()
            self.allocations.remove(allocation)
        if len(live) > granted:
            self._on_released()  # only once they have exited: no moment with more workers than the node holds

    async def _resize(self, n: int) -> None:
        if self.state is DeploymentState.STARTED:
            await self.scale(n)
        else:
            self.config = self.config.with_allocations(n)

    def retry_placement(self) -> None:
        """Room was freed on the node: try again for the allocations not granted so far."""
        self._spawn(self._retry_placement())

    async def _retry_placement(self) -> None:
        try:
            await self.scale(self.config.number_of_allocations)
        except Exception as exc:  # a worker that cannot start fails this try only; the next release retries
            log.warning("deployment [%s]: could not add allocations: %s", self.deployment_id, exc)

    def _new_allocation(self) -> Allocation:
        assert self._model_dir is not None
        return Allocation(
            self._fork_worker,
            self.config.threads_per_allocation,
            on_exit=self._allocation_exited,
            on_free=self.batcher.wake,
            nice=ALLOCATION_NICE,
        )

    def _allocation_exited(self, allocation: Allocation) -> None:
        self.batcher.wake()
        if allocation.state is not RoutingState.FAILED:
            return
        if self.state in (DeploymentState.STOPPING, DeploymentState.FAILED):
            return  # a deployment stopping, or failed (it runs nothing), restarts no worker
        log.warning("deployment [%s]: %s; restarting it", self.deployment_id, allocation.reason)
        self._observer.worker_restart(self.deployment_id)
        self.allocations.remove(allocation)
        replacement = self._new_allocation()
        self.allocations.append(replacement)
        self._spawn(self._start_replacement(replacement))

    async def _start_replacement(self, allocation: Allocation) -> None:
        try:
            await allocation.start()
        except WorkerStartError as exc:
            self.fail(str(exc))
        self.batcher.wake()
        self._notify()

    def _spawn(self, coro: Awaitable) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- memory ------------------------------------------------------------------------------

    def _processes(self) -> Processes:
        pids = [a.pid for a in self.allocations if a.pid is not None and a.state is RoutingState.STARTED]
        parent = self._parents.parent_pid(self._parent_key, self) if self._model_dir is not None else None
        return Processes(pids, self.query_lane.running_pid, parent)

    def memory(self) -> DeploymentMemory | None:
        """Its workers' memory as measured now (cached a few seconds); None before any allocation runs."""
        return self._memory.measured()

    def memory_per(self) -> tuple[int, int]:
        """(per-deployment, per-allocation) bytes: measured from its workers, else estimated from the
        model's files (memory_account.py)."""
        return self._memory.per(
            self._model_dir,
            self._max_batch_tokens,
            query_lane=self.query_lane.enabled,
            ran=bool(self.counters.inference_count),
        )

    # -- the next batch ----------------------------------------------------------------------

    def _on_request(self, search: bool) -> None:
        if self.config.number_of_allocations == 0:
            self.autoscaler.wake()  # the request waits in the queue for that allocation
        if not search and self.state is DeploymentState.STARTED:
            self.query_lane.ensure()

    def _allocations_busy(self) -> bool:
        """Whether an allocation runs a batch: queries then go to the query lane, one thread each."""
        return any(a.in_flight for a in self.allocations)

    def _lane_threads(self) -> int:
        """The query lane's threads: what the allocations hold together, within the machine's."""
        config = self.config
        return min(config.number_of_allocations * config.threads_per_allocation, machine_processors())

    def _pick(self, search_waiting: bool) -> tuple[Allocation, bool] | None:
        """Who takes the next batch, and whether only search entries may go there; None: wait.

        Queries on an idle deployment run in a batch of their own on all the threads of an
        allocation or of the query lane, whichever has more (they share fetching a big model's
        weights). While an allocation runs a batch, they go to the query lane, one thread each (at
        normal priority; two threads there would wait for each other while the allocations' threads
        run: docs/performance.md), and the allocations stay on bulk. Otherwise any free allocation
        takes the next batch, search entries first; of several, the last to finish one (its caches
        are warm: `_warmest`).
        """
        ready = [a for a in self.allocations if a.can_take]
        if search_waiting:
            lane = self.query_lane.ready()
            if ready and not self._allocations_busy():  # idle: a batch of queries alone
                allocation = _warmest(ready)
                if lane is not None and lane.num_threads > allocation.num_threads:
                    return lane, True
                return allocation, True
            if lane is not None:
                return lane, True
        if ready:
            return _warmest(ready), False
        return None


def _warmest(ready: list[Allocation]) -> Allocation:
    """The allocation with the fewest batches in flight; of equals, the last to finish one."""
    return min(ready, key=lambda a: (a.in_flight, -a.freed_at))
