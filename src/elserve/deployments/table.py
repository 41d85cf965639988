"""A backend's deployments by id: what `DeploymentBackend.get`, `all` and `of_model` answer, for both backends."""

from __future__ import annotations

from typing import Generic, TypeVar

from elserve.deployments.front import DeploymentFront

D = TypeVar("D", bound=DeploymentFront)


class DeploymentTable(Generic[D]):
    """Mixed into a backend's manager, which fills `_deployments`."""

    _deployments: dict[str, D]

    def get(self, deployment_id: str) -> D | None:
        return self._deployments.get(deployment_id)

    def all(self) -> list[D]:
        return sorted(self._deployments.values(), key=lambda d: (d.model_id, d.deployment_id))

    def of_model(self, model_id: str) -> list[D]:
        return [d for d in self.all() if d.model_id == model_id]
