"""All deployments of this server on Ray Serve: the `ray` backend of `backend.DeploymentBackend`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import ray

from elserve.deployments import batch_hold
from elserve.deployments.adaptive import DEFAULT_TIMINGS, ScalerTimings
from elserve.deployments.batcher import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.front import DeploymentFront, Observer
from elserve.deployments.rayserve.cluster import RayCluster
from elserve.deployments.rayserve.deployment import RayDeployment
from elserve.deployments.rayserve.ownership import SharedApplications
from elserve.deployments.rayserve.replica import ReplicaSpec
from elserve.deployments.rayserve.shipping import ShippedModels
from elserve.deployments.states import DeploymentState
from elserve.deployments.table import DeploymentTable
from elserve.errors import IllegalStateException, StatusException
from elserve.models.downloads import ModelDownloads
from elserve.store import SCALER_LEASE, Repository, is_shared, open_lease

log = logging.getLogger("elserve.deployments")

# How often Serve's controller is asked for the applications' states (it pushes to no one outside Ray).
_OBSERVE_INTERVAL_S = 0.5
# How often a front end renews the scaler lease, or tries to take it: the takeover time after its holder dies.
LEASE_CHECK_S = 1.0


class RayDeploymentManager(DeploymentTable[RayDeployment]):
    def __init__(
        self,
        downloads: ModelDownloads,
        cluster: RayCluster,
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        timings: ScalerTimings = DEFAULT_TIMINGS,
        observer: Observer | None = None,
        precision: str = "exact",
        replica_cache_root: Path | None = None,
        repo: Repository | None = None,
    ) -> None:
        """`repo`: the store; one other front ends share (with a Ray cluster they share) makes the Serve
        applications the lease holder's to deploy and delete (ownership.py)."""
        self.downloads = downloads
        self.cluster = cluster
        self._max_batch_tokens = max_batch_tokens
        self._timings = timings
        self._observer = observer
        self._precision = precision
        # Where each node keeps its models: the same path on every node, each node's own disk.
        self._cache_root = str((replica_cache_root or downloads.cache.root).resolve())
        self._shipped = ShippedModels()
        # A local Ray this server started runs on this machine alone: replicas reading the server's own
        # cache find every model there, and nothing needs to go through the object store.
        self._ship = not (cluster.owned and self._cache_root == str(downloads.cache.root.resolve()))
        self._deployments: dict[str, RayDeployment] = {}
        self._starting: dict[str, asyncio.Task] = {}
        self._observer_task: asyncio.Task | None = None
        self._connected = False
        self._shared: SharedApplications | None = None
        if repo is not None and is_shared(repo) and not cluster.owned:
            self._shared = SharedApplications(repo, open_lease(repo, SCALER_LEASE))
        self._owning_task: asyncio.Task | None = None

    # -- the interface -------------------------------------------------------------------------

    def start(self, config: DeploymentConfig) -> RayDeployment:
        assert config.deployment_id not in self._deployments
        deployment = self._new(config)
        self._deployments[config.deployment_id] = deployment

        async def run() -> None:
            try:
                await self._connect()
            except Exception as exc:  # Ray unreachable: this deployment fails, the server goes on
                deployment.fail(f"could not connect to Ray: {type(exc).__name__}: {exc}", 503)
                return
            await deployment.start()

        task = asyncio.create_task(run(), name=f"start-{config.deployment_id}")
        self._starting[config.deployment_id] = task
        task.add_done_callback(lambda _: self._starting.pop(config.deployment_id, None))
        return deployment

    def _new(self, config: DeploymentConfig) -> RayDeployment:
        async def model_dir() -> Path:
            return await self.downloads.ensure(config.model_id)

        return RayDeployment(
            config,
            model_dir,
            self._replica_spec,
            timings=self._timings,
            observer=self._observer,
            max_batch_tokens=self._max_batch_tokens,
            shared=self._shared,
        )

    def _replica_spec(self, config: DeploymentConfig) -> ReplicaSpec:
        """Blocking (called in a thread). The spec as served here (a built-in's fallback once that is what
        got installed), so every node installs the same files; with them when no other node can read its source."""
        spec = self.downloads.spec(config.model_id)
        return ReplicaSpec(
            model_id=spec.model_id,
            source=spec.source,
            sha256=spec.sha256,
            key=spec.key,
            cache_root=self._cache_root,
            num_threads=config.threads_per_allocation,
            precision=self._precision,
            max_batch_tokens=self._max_batch_tokens,
            max_batch_size=DEFAULT_MAX_BATCH_SIZE,
            hold=batch_hold.configured(),
            files=self._shipped.files_for(config.deployment_id, spec, self.downloads.cache) if self._ship else None,
        )

    def add_failed(self, config: DeploymentConfig, reason: str) -> RayDeployment:
        deployment = self._new(config)
        deployment.fail(reason)
        self._deployments[config.deployment_id] = deployment
        return deployment

    def forget(self, deployment_id: str) -> None:
        deployment = self._deployments.pop(deployment_id, None)
        if deployment is not None:
            deployment.kill()
            self._shipped.release(deployment_id)

    async def stop(self, deployment_id: str) -> None:
        deployment = self._deployments.get(deployment_id)
        if deployment is None:
            return
        task = self._starting.pop(deployment_id, None)
        if self._shared is not None:
            self._shared.give_up(deployment.application)  # a start waiting for the owner stops waiting
        if task is not None and not task.done():
            await asyncio.gather(task, return_exceptions=True)  # a half-made application is deleted below
        try:
            await deployment.stop()
        finally:
            self._deployments.pop(deployment_id, None)
            self._shipped.release(deployment_id)

    async def stop_all(self) -> None:
        """Delete every application; stop Serve and Ray if this server started them (a given cluster stays).
        Front ends sharing the cluster delete nothing: the others serve the applications on."""
        if self._shared is not None:
            self._shared.close()
            await asyncio.to_thread(self._shared.counters.close)
        if self._owning_task is not None:
            self._owning_task.cancel()
        await asyncio.gather(*(self.stop(d) for d in list(self._deployments)), return_exceptions=True)
        if self._observer_task is not None:
            self._observer_task.cancel()
        if self._connected:
            await asyncio.to_thread(self.cluster.shutdown, [])
            self._connected = False

    def check_start(self, config: DeploymentConfig) -> None:
        """429 when the cluster's CPUs cannot hold every deployment's replicas (Ray would wait forever)."""
        self._check_room(config, config.number_of_allocations, "start deployment")

    def check_update(self, deployment: DeploymentFront, allocations: int) -> None:
        if allocations > deployment.config.number_of_allocations:
            self._check_room(deployment.config, allocations, "update deployment")

    def _check_room(self, config: DeploymentConfig, allocations: int, action: str) -> None:
        if not ray.is_initialized():
            return  # the first deployment connects; Ray says then if it cannot place it
        total = ray.cluster_resources().get("CPU", 0.0)
        held = sum(
            d.config.threads_per_allocation * d.config.number_of_allocations
            for d in self._deployments.values()
            if d.deployment_id != config.deployment_id and d.state is not DeploymentState.FAILED
        )
        if held + config.threads_per_allocation * allocations > total:
            raise StatusException(
                f"Could not {action} because there are not enough resources to provide all requested allocations",
                429,
                caused_by=IllegalStateException(
                    f"the Ray cluster has [{total:g}] CPUs; [{held}] are held by other deployments"
                ),
            )

    def native_memory(self) -> tuple[int, int]:
        """Replicas run in Ray's processes, possibly on other machines: nothing measured on this node."""
        return 0, 0

    # -- Ray ----------------------------------------------------------------------------------

    async def _connect(self) -> None:
        if not self._connected:
            await asyncio.to_thread(self.cluster.connect)
            self.cluster.restore_signal_handlers()
            self._connected = True
        if self._observer_task is None:
            self._observer_task = asyncio.create_task(self._observe(), name="ray-observe")
        if self._shared is not None and self._owning_task is None:
            self._owning_task = asyncio.create_task(self._own(self._shared), name="ray-lease")

    async def _own(self, shared: SharedApplications) -> None:
        """Forever: hold or contend for the lease, and share this front end's counters with the others. A
        front end that takes the lease brings every application to its recorded settings (an update its
        last owner did not live to apply), then, while it holds it, deletes the applications no deployment
        records."""
        while True:
            try:
                owner, became = await asyncio.to_thread(shared.check)
                if became:
                    for d in self.all():
                        if d.state in (DeploymentState.STARTING, DeploymentState.STARTED) and d.tokenizer:
                            await d.reconfigure(d.config)
                if owner:
                    await asyncio.to_thread(shared.sweep)
                counted = {d.deployment_id: d.own_counters() for d in self.all()}
                await asyncio.to_thread(shared.counters.publish, counted)
            except Exception as exc:
                log.warning("the Serve applications' lease: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(LEASE_CHECK_S)

    async def _observe(self) -> None:
        """Forever: read Serve's and Ray's view of every application, hand it to its deployment."""
        while True:
            deployments = list(self._deployments.values())
            try:
                views = await asyncio.to_thread(self._read, [d.application for d in deployments])
            except Exception as exc:
                log.warning("could not read Ray Serve's status: %s", exc)
            else:
                nodes, seen = views
                for d in deployments:
                    status, placed = seen[d.application]
                    d.observe(status, placed, nodes)
            await asyncio.sleep(_OBSERVE_INTERVAL_S)

    def _read(self, applications: list[str]) -> tuple[dict, dict]:
        nodes = self.cluster.nodes()
        statuses = self.cluster.statuses(applications)
        placed = self.cluster.replica_nodes(applications)
        return nodes, {a: (statuses[a], placed[a]) for a in applications}
