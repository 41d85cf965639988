"""One elserve deployment on Ray Serve: a Serve application of one deployment (`encoder`).

The front half is front.py's, as for local workers: admission (queue_capacity: 429), tokenizing, the
lanes, and batches cut by the token budget (batcher.py); each batch is one call to Serve, which
spreads a bulk request's calls over the replicas. This module implements only the backend's contract:
deploy, delete and rescale the Serve application, run a batch as a call (its failures as
Elasticsearch's), and read Serve's view of the replicas. Inside each replica the calls that arrive
together are batched again by the same budget (replica.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve
from ray.serve.exceptions import BackPressureError

from elserve.deployments import messages
from elserve.deployments.adaptive import DEFAULT_TIMINGS, ScalerTimings
from elserve.deployments.batcher import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, BatchAnswer, WorkerDied
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.front import DeploymentFront, Observer
from elserve.deployments.memory import DeploymentMemory, estimate
from elserve.deployments.rayserve.cluster import RayNode
from elserve.deployments.rayserve.mapping import ServeStatus, deployment_state, failure_reason, serve_options
from elserve.deployments.rayserve.ownership import SharedApplications
from elserve.deployments.rayserve.peer_counters import FRONT_END
from elserve.deployments.rayserve.replica import ReplicaAnswer, ReplicaSpec, SparseEncoderReplica
from elserve.deployments.states import DeploymentState, RoutingState
from elserve.deployments.stats import DeploymentCounters, NodeShare

log = logging.getLogger("elserve.deployments")

# Serve builds a deployment's config by adding modules to cloudpickle's process-wide pickle-by-value
# table and removing them after, and its handles' long-poll thread does the same in this process when
# a config changes: a build that races it fails with "<module ...> is not registered for pickle by
# value" (Ray 2.60), before anything reaches Serve's controller. Such a build is tried again.
_BUILD_RACE = "is not registered for pickle by value"
_BUILD_TRIES = 3

# A replica that died mid-call: the call goes once more to another replica, as a local allocation's batch.
_REPLICA_LOST = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


@dataclass(frozen=True)
class Replica:
    """A running replica as the stats count it (an allocation)."""

    state: RoutingState


def application_name(deployment_id: str) -> str:
    return f"elserve-{deployment_id}"


class RayDeployment(DeploymentFront):
    # The deployment is the dispatcher's one worker: each batch is a call to Serve, cut to the
    # whole token budget, and Serve's handle spreads the calls over the replicas.
    slots = 1

    def __init__(
        self,
        config: DeploymentConfig,
        model_dir: Callable[[], Awaitable[Path]],
        replica_spec: Callable[[DeploymentConfig], ReplicaSpec],
        *,
        timings: ScalerTimings = DEFAULT_TIMINGS,
        observer: Observer | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        shared: SharedApplications | None = None,
    ) -> None:
        super().__init__(
            config,
            model_dir,
            max_batch_tokens=max_batch_tokens,
            max_batch_size=DEFAULT_MAX_BATCH_SIZE,
            observer=observer,
        )
        self._shared = shared  # front ends sharing the cluster: the lease holder deploys and deletes
        self.serve_status: ServeStatus | None = None
        self._replica_spec = replica_spec
        self._timings = timings
        self._handle: Any = None
        self._placed: dict[str, list[int]] = {}
        self._nodes: dict[str, RayNode] = {}
        self._node_counters: dict[str, DeploymentCounters] = {}

    @property
    def application(self) -> str:
        return application_name(self.deployment_id)

    @property
    def started_allocations(self) -> int:
        return self.serve_status.running if self.serve_status is not None else 0

    @property
    def allocations(self) -> list[Replica]:
        status = self.serve_status
        if status is None:
            return []
        return [Replica(RoutingState.STARTED)] * status.running + [Replica(RoutingState.STARTING)] * status.starting

    # -- lifecycle ---------------------------------------------------------------------------

    async def _begin(self) -> None:
        """Deploy the application; replicas fetch the model themselves."""
        await asyncio.to_thread(self._deploy)

    def _deploy(self) -> None:
        """Create or update the Serve application; Serve changes replica counts in place (no restart)."""
        for attempt in range(1, _BUILD_TRIES + 1):
            try:
                self._build_and_run()
                return
            except ValueError as exc:
                if _BUILD_RACE not in str(exc) or attempt == _BUILD_TRIES:
                    raise
                log.warning("deployment [%s]: Serve's build raced another thread (%s); again", self.deployment_id, exc)

    def _build_and_run(self) -> None:
        options = serve_options(self.config, self._timings)

        def run() -> Any:
            # Serve's overloads type a class argument as a decorator's; it is a Deployment.
            deployment: Any = serve.deployment(SparseEncoderReplica)
            app = deployment.options(**options).bind(self._replica_spec(self.config))
            return serve._run(app, _blocking=False, name=self.application, route_prefix=None)

        shared = self._shared
        handle = run() if shared is None else shared.deploy(self.application, {"model": self.model_id, **options}, run)
        self._handle = handle.options(method_name="encode")

    def observe(self, status: ServeStatus | None, placed: dict[str, list[int]], nodes: dict[str, RayNode]) -> None:
        """What Serve and Ray say now (the manager's poll): states, replicas, nodes."""
        if self._handle is None and self.state is DeploymentState.STARTING:
            return  # not deployed (or attached) yet: nothing here can call it
        before = (self.state, self.started_allocations, self.serve_status)
        self.serve_status = status
        self._placed = placed
        self._nodes = nodes
        state = deployment_state(status, self.state, self.config.number_of_allocations)
        if state is DeploymentState.FAILED and self.state is not DeploymentState.FAILED:
            self.fail(
                failure_reason(status.message)
                if status and status.message
                else "Ray Serve could not deploy the replicas"
            )
        self.state = state
        if status is not None and self.config.adaptive_enabled and self.state is DeploymentState.STARTED:
            # Serve's autoscaler decides the count: the target is what it runs or starts.
            self.config = self.config.with_allocations(status.running + status.starting)
        waiting = status is not None and status.running < self.config.number_of_allocations and status.starting
        self.placement_reason = "waiting for Ray to place replicas (resources)" if waiting else None
        if before != (self.state, self.started_allocations, self.serve_status):
            self._notify()

    async def _end(self) -> None:
        """Delete the Serve application (its replicas stop); with a shared cluster, only its owner does."""
        if self._handle is not None and (self._shared is None or self._shared.deletes()):
            await asyncio.to_thread(serve.delete, self.application)
        self._handle = None

    def kill(self) -> None:
        """Drop the application at once (a failed deployment about to be replaced)."""
        if self._handle is not None and (self._shared is None or self._shared.deletes()):
            serve.delete(self.application, _blocking=False)
        self._handle = None

    async def _resize(self, n: int) -> None:
        """The application is updated in place."""
        self.config = self.config.with_allocations(n)
        if self._handle is not None:
            await asyncio.to_thread(self._deploy)

    def memory_per(self) -> tuple[int, int]:
        """Estimated from the model's files: the replicas' processes are on other nodes, out of this
        server's /proc. A replica loads the model itself (no forked parent, no query lane)."""
        return estimate(self._model_dir, self._max_batch_tokens, query_lane=False)

    def memory(self) -> DeploymentMemory | None:
        return None

    def node_shares(self) -> list[NodeShare]:
        shares = []
        for node_id, pids in sorted(self._placed.items()):
            node = self._nodes.get(node_id) or RayNode(node_id, node_id, "")
            counters = self._with_others(node_id, self._node_counters.get(node_id) or DeploymentCounters())
            state = RoutingState.FAILED if self.state is DeploymentState.FAILED else RoutingState.STARTED
            if self.state is DeploymentState.STOPPING:
                state = RoutingState.STOPPING
            shares.append(NodeShare(node.node_id, node.name, node.address, len(pids), state, counters))
        return shares

    def cluster_counters(self) -> DeploymentCounters:
        """Its counters summed over the front ends that serve it (peer_counters.py): this one's if none other."""
        return self._with_others(FRONT_END, self.counters)

    def own_counters(self) -> dict[str, DeploymentCounters]:
        """What this front end counted: in all, and per Ray node (published for the other front ends)."""
        return {FRONT_END: self.counters, **self._node_counters}

    def _with_others(self, node_id: str, own: DeploymentCounters) -> DeploymentCounters:
        return own if self._shared is None else self._shared.counters.with_others(self.deployment_id, node_id, own)

    # -- a batch: one call to Serve ----------------------------------------------------------------

    def _pick(self, search_waiting: bool) -> tuple[RayDeployment, bool]:
        """Every batch goes to Serve at once: its handle spreads the calls over the replicas and queues
        them (up to `max_queued_requests`); there is no query lane (one per replica would double them)."""
        return self, False

    def submit(self, batch: list[np.ndarray], more_waiting: bool = False) -> asyncio.Future[BatchAnswer]:
        return asyncio.ensure_future(self._call(batch))

    def withdraw(self, future: asyncio.Future[BatchAnswer]) -> None:
        """Its callers have gone: the call is cancelled in Serve too."""
        future.cancel()

    async def _call(self, batch: list[np.ndarray]) -> BatchAnswer:
        handle = self._handle
        if handle is None:
            raise messages.not_serving(self.deployment_id, self.state)
        response = handle.remote(batch)
        try:
            answer: ReplicaAnswer = await response
        except asyncio.CancelledError:
            response.cancel()
            raise
        except BackPressureError:
            self.counters.rejected_execution_count += 1
            raise messages.queue_full() from None
        except _REPLICA_LOST as exc:
            log.warning("deployment [%s]: a replica was lost (%s); retrying on another", self.deployment_id, exc)
            self._observer.worker_restart(self.deployment_id)
            raise WorkerDied(str(exc)) from None
        each = answer.seconds / max(1, len(batch))
        self._node_counters.setdefault(answer.node_id, DeploymentCounters()).record(len(batch), each)
        return answer.vectors, answer.seconds
