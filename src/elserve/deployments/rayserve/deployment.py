"""One elserve deployment on Ray Serve: a Serve application of one deployment (`encoder`).

The front-end half lives here, in the server: admission (queue_capacity: 429), tokenizing, cutting a
request into calls of at most one token budget (so that Serve spreads a bulk request over the
replicas), and mapping Serve's answers and failures to Elasticsearch's. Inside each replica the
calls that arrive together are batched again by the same budget (replica.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve
from ray.serve.exceptions import BackPressureError

from elserve.deployments.backend import NodeShare
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import InferenceResult, Observer, read_model
from elserve.deployments.memory import DeploymentMemory, estimate
from elserve.deployments.queue import Admission
from elserve.deployments.rayserve.cluster import RayNode
from elserve.deployments.rayserve.mapping import (
    ScalingDelays,
    ServeStatus,
    deployment_state,
    failure_reason,
    serve_options,
)
from elserve.deployments.rayserve.ownership import SharedApplications
from elserve.deployments.rayserve.peer_counters import FRONT_END
from elserve.deployments.rayserve.replica import ReplicaAnswer, ReplicaSpec, SparseEncoderReplica
from elserve.deployments.states import DeploymentState, RoutingState
from elserve.deployments.stats import DeploymentCounters, now_ms
from elserve.errors import RejectedExecutionException, StatusException
from elserve.runtime import SparseVector, Tokenizer

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


class RayDeployment:
    def __init__(
        self,
        config: DeploymentConfig,
        model_dir: Callable[[], Awaitable[Path]],
        replica_spec: Callable[[DeploymentConfig], ReplicaSpec],
        *,
        delays: ScalingDelays = ScalingDelays(),
        observer: Observer | None = None,
        max_batch_tokens: int = 4096,
        shared: SharedApplications | None = None,
    ) -> None:
        self.config = config
        self._shared = shared  # front ends sharing the cluster: the lease holder deploys and deletes
        self.state = DeploymentState.STARTING
        self.reason: str | None = None
        self.failure_status = 500
        self.placement_reason: str | None = None
        self.start_time_ms = now_ms()
        self.counters = DeploymentCounters()
        self.tokenizer: Tokenizer | None = None
        self.serve_status: ServeStatus | None = None
        self._model_dir_source = model_dir
        self._model_dir: Path | None = None  # here once fetched: what the estimate sizes
        self._replica_spec = replica_spec
        self._delays = delays
        self._observer = observer
        self._max_batch_tokens = max_batch_tokens
        self._admission = Admission(config.queue_capacity)
        self._handle: Any = None
        self._changed = asyncio.Event()  # state or replicas changed (set by `observe`)
        self._placed: dict[str, list[int]] = {}
        self._nodes: dict[str, RayNode] = {}
        self._node_counters: dict[str, DeploymentCounters] = {}

    @property
    def deployment_id(self) -> str:
        return self.config.deployment_id

    @property
    def model_id(self) -> str:
        return self.config.model_id

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

    @property
    def queued_texts(self) -> int:
        return 0  # texts wait in Serve's handles and replicas, which do not tell

    @property
    def pending_requests(self) -> int:
        return self._admission.count

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Get the model for the tokenizer here; deploy the application; replicas fetch the model themselves."""
        try:
            self._model_dir = model_dir = await self._model_dir_source()
            self.tokenizer = await asyncio.to_thread(read_model, model_dir, self._max_batch_tokens)
            await asyncio.to_thread(self._deploy)
        except Exception as exc:  # whatever stops the start (download, Ray) fails the deployment
            self.fail(getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}", getattr(exc, "status", 500))

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
        options = serve_options(self.config, self._delays)

        def run() -> Any:
            app = serve.deployment(SparseEncoderReplica).options(**options).bind(self._replica_spec(self.config))
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
            self._changed.set()

    async def wait_started(self, timeout: float | None) -> bool:
        return await self.wait_until("started", timeout)

    async def wait_until(self, condition: str, timeout: float | None) -> bool:
        def reached() -> bool:
            if self.state in (DeploymentState.FAILED, DeploymentState.STOPPING):
                return True
            if self.state is not DeploymentState.STARTED:
                return False
            return condition != "fully_allocated" or self.started_allocations >= self.config.number_of_allocations

        async def wait() -> None:
            while not reached():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return True

    def fail(self, reason: str, status: int = 500) -> None:
        log.error("deployment [%s] failed: %s", self.deployment_id, reason)
        self.state = DeploymentState.FAILED
        self.reason = reason
        self.failure_status = status
        self._changed.set()

    async def stop(self) -> None:
        """Finish the requests inside, then delete the Serve application (its replicas stop)."""
        self.state = DeploymentState.STOPPING
        self._changed.set()
        await self._admission.idle.wait()
        if self._handle is not None and (self._shared is None or self._shared.deletes()):
            await asyncio.to_thread(serve.delete, self.application)
        self._handle = None

    def kill(self) -> None:
        """Drop the application at once (a failed deployment about to be replaced)."""
        if self._handle is not None and (self._shared is None or self._shared.deletes()):
            serve.delete(self.application, _blocking=False)
        self._handle = None

    async def reconfigure(self, config: DeploymentConfig) -> None:
        """New allocations or adaptive settings: the application is updated in place."""
        self.config = replace(
            self.config,
            adaptive_allocations=config.adaptive_allocations,
            number_of_allocations=config.number_of_allocations,
        )
        if self._handle is not None:
            await asyncio.to_thread(self._deploy)
        self._changed.set()

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

    # -- inference ---------------------------------------------------------------------------

    async def infer(
        self, texts: list[str], timeout: float | None, priority: str | None = None
    ) -> list[InferenceResult]:
        """Encode `texts` on the replicas; `priority` has no lane here (one per replica would double them)."""
        self._check_serving()
        if not self._admission.try_acquire():
            self.counters.rejected_execution_count += 1
            raise RejectedExecutionException("inference process queue is full. Unable to execute command")
        try:
            assert self.tokenizer is not None
            encoded = await asyncio.to_thread(self.tokenizer.encode_batch, texts)
            cut = _cut([e.ids for e in encoded], self._max_batch_tokens)
            calls = [asyncio.ensure_future(self._call(c)) for c in cut]
            try:
                parts = await asyncio.wait_for(asyncio.gather(*calls), timeout)
            except TimeoutError:
                self.counters.timeout_count += 1
                raise
            finally:
                for call in calls:  # one call refused or failed: the request's other calls are dropped
                    call.cancel()
        finally:
            self._admission.release()
        vectors = [SparseVector(i, w) for part in parts for i, w in part]
        return [InferenceResult(v, e.is_truncated) for v, e in zip(vectors, encoded, strict=True)]

    async def _call(self, batch: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        for attempt in (1, 2):
            handle = self._handle
            if handle is None:
                raise StatusException(f"Trained model [{self.deployment_id}] is [{self.state}]", 409)
            response = handle.remote(batch)
            try:
                answer: ReplicaAnswer = await response
            except asyncio.CancelledError:
                response.cancel()
                raise
            except BackPressureError:
                self.counters.rejected_execution_count += 1
                raise RejectedExecutionException("inference process queue is full. Unable to execute command") from None
            except _REPLICA_LOST as exc:
                if attempt == 2:
                    self.counters.error_count += len(batch)
                    raise StatusException(f"inference process crashed due to reason [{exc}]", 500) from None
                log.warning("deployment [%s]: a replica was lost (%s); retrying on another", self.deployment_id, exc)
                if self._observer is not None:
                    self._observer.worker_restart(self.deployment_id)
                continue
            except Exception as exc:
                self.counters.error_count += len(batch)
                raise StatusException(f"inference failed: {exc}", 500) from None
            self._record(batch, answer)
            return answer.vectors
        raise AssertionError("unreachable")

    def _record(self, batch: list[np.ndarray], answer: ReplicaAnswer) -> None:
        each = answer.seconds / max(1, len(batch))
        self.counters.record(len(batch), each)
        self._node_counters.setdefault(answer.node_id, DeploymentCounters()).record(len(batch), each)
        if self._observer is not None:
            self._observer.batch(self.deployment_id, len(batch), sum(len(ids) for ids in batch))

    def _check_serving(self) -> None:
        if self.state in (DeploymentState.STOPPING, DeploymentState.FAILED):
            raise StatusException(f"Trained model [{self.deployment_id}] is [{self.state}]", 409)
        if self.state is DeploymentState.STARTING:
            raise StatusException(f"Trained model deployment [{self.deployment_id}] is not allocated to any nodes", 409)


def _cut(batch: list[np.ndarray], max_tokens: int) -> list[list[np.ndarray]]:
    """Consecutive calls of at most `max_tokens` tokens each (a longer text alone), order kept."""
    calls: list[list[np.ndarray]] = []
    tokens = 0
    for ids in batch:
        if not calls or tokens + len(ids) > max_tokens:
            calls.append([])
            tokens = 0
        calls[-1].append(ids)
        tokens += len(ids)
    return calls
