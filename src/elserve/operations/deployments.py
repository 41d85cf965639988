"""Deployments that outlive a restart: each one started is recorded, and restored at start-up."""

from __future__ import annotations

import logging

from elserve.deployments.config import AdaptiveConfig, DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.manager import DeploymentManager
from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.store import Repository

log = logging.getLogger("elserve.deployments")
_KIND = "deployment"


class DeploymentRecords:
    def __init__(self, repo: Repository, manager: DeploymentManager) -> None:
        self._repo = repo
        self._manager = manager

    def start(self, config: DeploymentConfig) -> Deployment:
        """Record the deployment, then start it (the record first: a crash mid-start restores it)."""
        existing = self._manager.get(config.deployment_id)
        if existing is not None:
            # A failed deployment is replaced by the next start of the same id.
            self._manager.forget(config.deployment_id)
        self._manager.check_start(config)  # 429 when its allocations do not all fit the node
        self._repo.put(_KIND, config.deployment_id, config.to_persisted())
        return self._manager.start(config)

    def forget(self, deployment_id: str) -> None:
        """Drop the record of a deployment that failed to start (it stays visible until replaced)."""
        self._repo.delete(_KIND, deployment_id)

    def save(self, config: DeploymentConfig) -> None:
        self._repo.put(_KIND, config.deployment_id, config.to_persisted())

    async def stop(self, deployment_id: str) -> None:
        self._repo.delete(_KIND, deployment_id)
        await self._manager.stop(deployment_id)

    def restore(self) -> None:
        for deployment_id, doc in self._repo.list(_KIND):
            if self._manager.get(deployment_id) is None:
                log.info("restoring deployment [%s]", deployment_id)
                self._manager.start(DeploymentConfig.from_persisted(doc))


def adaptive_config(adaptive: AdaptiveAllocations | None) -> AdaptiveConfig | None:
    """An endpoint's or a request's `adaptive_allocations` as the deployment holds them."""
    if adaptive is None:
        return None
    return AdaptiveConfig(
        enabled=adaptive.is_enabled,
        min_number_of_allocations=adaptive.min_number_of_allocations,
        max_number_of_allocations=adaptive.max_number_of_allocations,
    )


def adaptive_allocations(config: DeploymentConfig) -> AdaptiveAllocations | None:
    """A deployment's adaptive settings as endpoints and responses hold them (the other direction)."""
    adaptive = config.adaptive_allocations
    if adaptive is None:
        return None
    return AdaptiveAllocations(
        adaptive.enabled, adaptive.min_number_of_allocations, adaptive.max_number_of_allocations
    )


def initial_allocations(number_of_allocations: int | None, adaptive: AdaptiveAllocations | None) -> int:
    """Elasticsearch's start: the explicit number, else the adaptive minimum when above 0, else 1."""
    if number_of_allocations is not None:
        return number_of_allocations
    if adaptive is not None and adaptive.is_enabled and (adaptive.min_number_of_allocations or 0) > 0:
        return adaptive.min_number_of_allocations
    return 1
