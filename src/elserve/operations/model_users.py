"""Who uses a model, as the data directory's store says: its inference endpoints and deployments
(what `elserve models rm` checks before deleting a model)."""

from __future__ import annotations

from collections.abc import Callable

from elserve.deployments.config import DeploymentConfig
from elserve.endpoints.endpoint import Endpoint
from elserve.store import Repository


def model_users(repo: Repository) -> Callable[[str], list[str]]:
    """A function from a model id to the ids of the endpoints and deployments stored for it."""

    def users(model_id: str) -> list[str]:
        found = []
        for inference_id, doc in repo.list("endpoint"):
            try:
                if Endpoint.from_persisted(doc).model_id == model_id:
                    found.append(inference_id)
            except (KeyError, TypeError, ValueError):
                continue  # an unreadable record names no model
        for deployment_id, doc in repo.list("deployment"):
            try:
                if DeploymentConfig.from_persisted(doc).model_id == model_id:
                    found.append(deployment_id)
            except (KeyError, TypeError, ValueError):
                continue
        return sorted(set(found))

    return users
