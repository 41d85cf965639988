"""All deployments of this server, by deployment id."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from elserve.deployments.adaptive import DEFAULT_TIMINGS, ScalerTimings
from elserve.deployments.batcher import DEFAULT_MAX_BATCH_TOKENS
from elserve.deployments.capacity import Demand, Fit, NodeCapacity, fit, held_allocations
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.front import DeploymentFront, Observer
from elserve.deployments.memory import estimate, process_memory
from elserve.deployments.parent import ModelParents, running_fork_server_pid
from elserve.deployments.states import DeploymentState
from elserve.deployments.table import DeploymentTable
from elserve.errors import IllegalStateException, StatusException
from elserve.models.downloads import ModelDownloads

log = logging.getLogger("elserve.deployments")


async def _no_model_dir() -> Path:
    raise RuntimeError("a failed deployment has no model")


class DeploymentManager(DeploymentTable[Deployment]):
    def __init__(
        self,
        downloads: ModelDownloads,
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        timings: ScalerTimings = DEFAULT_TIMINGS,
        observer: Observer | None = None,
        precision: str = "exact",
        capacity: NodeCapacity | None = None,
    ) -> None:
        self.downloads = downloads
        self.capacity = capacity or NodeCapacity.of_machine()
        # Allocations each deployment may run: what the node granted it (Elasticsearch's route targets).
        self._granted: dict[str, int] = {}
        self._stopping: dict[str, Deployment] = {}
        self._deployments: dict[str, Deployment] = {}
        self._starting: dict[str, asyncio.Task] = {}
        self._max_batch_tokens = max_batch_tokens
        self._timings = timings
        self._observer = observer
        self._precision = precision
        self._parents = ModelParents()  # one loaded parent per model, its workers forked from it

    def start(self, config: DeploymentConfig) -> Deployment:
        """Create the deployment and start it in the background (download included)."""
        assert config.deployment_id not in self._deployments

        async def model_dir() -> Path:
            return await self.downloads.ensure(config.model_id)

        deployment = Deployment(
            config,
            model_dir,
            max_batch_tokens=self._max_batch_tokens,
            timings=self._timings,
            observer=self._observer,
            precision=self._precision,
            grant=self._grant,
            on_released=self._rebalance,
            parents=self._parents,
        )
        self._deployments[config.deployment_id] = deployment
        task = asyncio.create_task(deployment.start(), name=f"start-{config.deployment_id}")
        self._starting[config.deployment_id] = task
        task.add_done_callback(lambda _: self._starting.pop(config.deployment_id, None))
        return deployment

    def add_failed(self, config: DeploymentConfig, reason: str) -> Deployment:
        """A deployment that could not even be created (e.g. its stored record is unreadable): present,
        `failed` with its reason, so it shows in stats and can be stopped or deleted."""
        deployment = Deployment(config, _no_model_dir, observer=self._observer, precision=self._precision)
        deployment.fail(reason)
        self._deployments[config.deployment_id] = deployment
        return deployment

    # -- capacity ----------------------------------------------------------------------------------

    def memory_per(self, config: DeploymentConfig, deployment: Deployment | None = None) -> tuple[int, int]:
        """(per-deployment, per-allocation) bytes: measured from the running workers, else estimated
        from the model's files."""
        if deployment is not None:
            return deployment.memory_per()
        model_dir = self.downloads.state(config.model_id).path
        return estimate(model_dir, self._max_batch_tokens, query_lane=not config.low_priority)

    def _demand(self, config: DeploymentConfig, allocations: int, deployment: Deployment | None = None) -> Demand:
        deployment_memory, allocation_memory = self.memory_per(config, deployment)
        return Demand(
            allocations=allocations,
            threads_per_allocation=config.threads_per_allocation,
            low_priority=config.low_priority,
            deployment_memory=deployment_memory,
            allocation_memory=allocation_memory,
        )

    def fit(self, config: DeploymentConfig, allocations: int) -> Fit:
        """How many of `allocations` fit for this deployment beside what the others hold."""
        others = [
            self._demand(d.config, self._held(d), d)
            for d in [*self._deployments.values(), *self._stopping.values()]
            if d is not self._deployments.get(config.deployment_id)
        ]
        return fit(self.capacity, others, self._demand(config, allocations, self.get(config.deployment_id)))

    def used(self) -> tuple[int, int]:
        """(processors, memory bytes) the granted allocations take."""
        held = [*self._deployments.values(), *self._stopping.values()]
        demands = [self._demand(d.config, self._held(d), d) for d in held]
        return (
            sum(x.processors(x.allocations) for x in demands),
            sum(x.memory(x.allocations) for x in demands),
        )

    def _held(self, deployment: Deployment) -> int:
        """What a deployment takes (capacity.held_allocations): a failed one nothing once its workers are gone."""
        return held_allocations(
            deployment.state,
            self._granted.get(deployment.deployment_id, 0),
            [a.state for a in deployment.allocations],
        )

    def native_memory(self) -> tuple[int, int]:
        """(the fork server's PSS, the workers' PSS): what inference takes on this node, measured."""
        fork_server = running_fork_server_pid()
        shared = process_memory(fork_server) if fork_server is not None else None
        workers = sum((m.total_bytes for d in self._deployments.values() if (m := d.memory()) is not None), 0)
        return (shared.pss_bytes if shared else 0), workers

    def check_start(self, config: DeploymentConfig) -> None:
        """Refuse a start whose allocations do not all fit, as Elasticsearch does when it cannot scale (429)."""
        placed = self.fit(config, config.number_of_allocations)
        if placed.allocations >= config.number_of_allocations:
            return
        if placed.allocations == 0:
            raise StatusException(
                "Could not start deployment because no ML nodes with sufficient capacity were found",
                429,
                caused_by=IllegalStateException(
                    "Could not start deployment because no suitable nodes were found, allocation explanation "
                    f"[{placed.reason}]"
                ),
            )
        raise StatusException(
            "Could not start deployment because there are not enough resources to provide all requested allocations",
            429,
        )

    def check_update(self, deployment: DeploymentFront, allocations: int) -> None:
        """Refuse more allocations than fit (`increaseNumberOfAllocations`, 429)."""
        if allocations <= deployment.config.number_of_allocations:
            return
        if self.fit(deployment.config, allocations).allocations < allocations:
            raise StatusException(
                "Could not update deployment because there are not enough resources to provide all requested "
                "allocations",
                429,
            )

    def _grant(self, deployment: Deployment, wanted: int) -> int:
        """Called before a deployment starts or stops workers: how many it may run."""
        placed = self.fit(deployment.config, wanted)
        self._granted[deployment.deployment_id] = placed.allocations
        deployment.placement_reason = placed.reason
        return placed.allocations

    def _release(self, deployment_id: str) -> None:
        if self._granted.pop(deployment_id, 0):
            self._rebalance()

    def _rebalance(self) -> None:
        """Room was freed: deployments short of their target try again (Elasticsearch rebalances on stop)."""
        for d in self._deployments.values():
            if d.placement_reason is not None and d.tokenizer is not None and d.state is not DeploymentState.FAILED:
                d.retry_placement()

    def forget(self, deployment_id: str) -> None:
        """Drop a deployment at once (a failed one, about to be replaced); its workers are killed."""
        deployment = self._deployments.pop(deployment_id, None)
        if deployment is not None:
            deployment.kill()
            self._release(deployment_id)

    async def stop(self, deployment_id: str) -> None:
        deployment = self._deployments.pop(deployment_id, None)
        if deployment is None:
            return
        task = self._starting.pop(deployment_id, None)
        if task is not None and not task.done():
            task.cancel()
        self._stopping[deployment_id] = deployment  # its workers hold their room until they exit
        try:
            await deployment.stop()
        finally:
            del self._stopping[deployment_id]
            self._release(deployment_id)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(d) for d in list(self._deployments)), return_exceptions=True)
