"""The deployment interface the operations and the API use, whatever runs the allocations.

Two backends implement it: `local` (manager.py, deployment.py: worker processes on this machine)
and `ray` (rayserve/: Ray Serve replicas on a Ray cluster). A deployment is the shared front end
(front.py) whichever runs it; a backend's own part is the contract there. Nothing above
`deployments/` needs to know which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from elserve.deployments.config import DeploymentConfig
from elserve.deployments.front import DeploymentFront
from elserve.deployments.stats import NodeShare
from elserve.models.downloads import ModelDownloads

__all__ = ["DeploymentBackend", "NodeShare", "ServedDeployment"]


# The deployment as the operations see it: the shared front end, whichever backend runs its allocations.
ServedDeployment = DeploymentFront


class DeploymentBackend(Protocol):
    # Where the backend's models come from (its catalogue resolves model ids: built-ins, then uploads).
    downloads: ModelDownloads

    def get(self, deployment_id: str) -> ServedDeployment | None: ...

    def all(self) -> Sequence[ServedDeployment]: ...

    def of_model(self, model_id: str) -> Sequence[ServedDeployment]: ...

    def start(self, config: DeploymentConfig) -> ServedDeployment: ...

    def add_failed(self, config: DeploymentConfig, reason: str) -> ServedDeployment: ...

    def forget(self, deployment_id: str) -> None: ...

    async def stop(self, deployment_id: str) -> None: ...

    async def stop_all(self) -> None: ...

    def check_start(self, config: DeploymentConfig) -> None: ...

    def check_update(self, deployment: ServedDeployment, allocations: int) -> None: ...

    def native_memory(self) -> tuple[int, int]: ...
