"""The inference endpoint API: create, read, update, delete, and infer.

The order of the steps is Elasticsearch's (`TransportPutInferenceModelAction`):
validate, check the id against deployments, store, then download and deploy
within `timeout`. Unlike Elasticsearch, every validation runs before anything
is stored, and a deployment that fails takes its endpoint back out (spec
decision 2); a timeout leaves the endpoint stored and the deployment going on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.manager import DeploymentManager
from elserve.deployments.states import DeploymentState
from elserve.endpoints import (
    Endpoint,
    check_deletable,
    parse_infer_request,
    parse_put_request,
    parse_task_type,
    parse_update_request,
    preconfigured_endpoint,
    preconfigured_endpoints,
    task_type_mismatch,
)
from elserve.timevalue import TimeValue
from elserve.errors import (
    IllegalArgumentException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    StatusException,
)
from elserve.models.catalogue import resolve
from elserve.models.downloads import ModelDownloads
from elserve.operations.deployments import DeploymentRecords, adaptive_config, initial_allocations
from elserve.runtime import to_token_weights
from elserve.store import Repository

_KIND = "endpoint"


def _not_found(inference_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Inference endpoint not found [{inference_id}]")


def deployment_config(endpoint: Endpoint) -> DeploymentConfig:
    """The deployment an endpoint starts: id = inference id, its allocations, threads and adaptive settings."""
    settings = endpoint.service_settings
    adaptive = settings.adaptive_allocations
    return DeploymentConfig(
        deployment_id=endpoint.deployment_id,
        model_id=settings.model_id,
        number_of_allocations=initial_allocations(settings.num_allocations, adaptive),
        threads_per_allocation=settings.num_threads,
        adaptive_allocations=adaptive_config(adaptive),
        owner_endpoint=endpoint.inference_id,
    )


class InferenceOperations:
    def __init__(self, repo: Repository, manager: DeploymentManager, downloads: ModelDownloads) -> None:
        self._repo = repo
        self._manager = manager
        self._downloads = downloads
        self._records = DeploymentRecords(repo, manager)
        self._lock = asyncio.Lock()  # create/delete/update of endpoints are serialised

    # -- reading -----------------------------------------------------------------------------

    def _stored(self, inference_id: str) -> Endpoint | None:
        doc = self._repo.get(_KIND, inference_id)
        return None if doc is None else Endpoint.from_persisted(doc)

    def find(self, inference_id: str) -> Endpoint:
        endpoint = self._stored(inference_id) or preconfigured_endpoint(inference_id)
        if endpoint is None:
            raise _not_found(inference_id)
        return endpoint

    def _all(self) -> list[Endpoint]:
        stored = {key: Endpoint.from_persisted(doc) for key, doc in self._repo.list(_KIND)}
        for endpoint in preconfigured_endpoints():
            stored.setdefault(endpoint.inference_id, endpoint)
        return [stored[key] for key in sorted(stored)]

    def endpoints_using(self, deployment_id: str) -> list[str]:
        """Ids of the stored endpoints that infer through this deployment."""
        return [e.inference_id for e in self._all() if e.deployment_id == deployment_id and self._stored(e.inference_id)]

    def _render(self, endpoint: Endpoint) -> dict[str, Any]:
        deployment = self._manager.get(endpoint.deployment_id)
        live = None if deployment is None else deployment.config.number_of_allocations
        return endpoint.to_dict(live_allocations=live)

    def get(self, inference_id: str | None, task_type: str | None) -> dict[str, Any]:
        """`GET /_inference[/{task_type}][/{id}]` (`_all` and `*` list)."""
        wanted = None if task_type is None else parse_task_type(task_type)
        if inference_id in (None, "_all", "*"):
            endpoints = [e for e in self._all() if wanted is None or e.task_type == wanted]
            return {"endpoints": [self._render(e) for e in endpoints]}
        endpoint = self.find(inference_id)
        if wanted is not None and wanted != endpoint.task_type:
            raise task_type_mismatch(wanted, endpoint.task_type)
        return {"endpoints": [self._render(endpoint)]}

    # -- creating ----------------------------------------------------------------------------

    async def put(
        self, inference_id: str, task_type: str | None, body: dict[str, Any], timeout: TimeValue
    ) -> tuple[dict[str, Any], list[str]]:
        request = parse_put_request(inference_id, task_type, body)
        endpoint = request.endpoint
        async with self._lock:
            existing = self._manager.get(inference_id)
            if existing is not None and existing.state is not DeploymentState.FAILED:
                raise IllegalArgumentException(
                    f"Model IDs must be unique. Requested model ID [{inference_id}] matches existing model IDs "
                    "but must not."
                )
            endpoint = self._bind_deployment(endpoint)
            if resolve(endpoint.service_settings.model_id) is None:
                raise ResourceNotFoundException(
                    f"Could not deploy model [{endpoint.service_settings.model_id}] as the model cannot be found."
                )
            if not self._repo.create(_KIND, inference_id, endpoint.to_persisted()):
                raise ResourceAlreadyExistsException(f"Inference endpoint [{inference_id}] already exists")
            if endpoint.service_settings.deployment_id is not None:
                return endpoint.to_dict(), request.warnings
            deployment = self._records.start(deployment_config(endpoint))
        await self._wait_started(deployment, endpoint, timeout)
        return endpoint.to_dict(), request.warnings

    def _bind_deployment(self, endpoint: Endpoint) -> Endpoint:
        """With `deployment_id`: use that existing deployment and copy its settings, as Elasticsearch does."""
        deployment_id = endpoint.service_settings.deployment_id
        if deployment_id is None:
            return endpoint
        deployment = self._manager.get(deployment_id)
        if deployment is None:
            raise ResourceNotFoundException(f"Cannot find deployment [{deployment_id}]")
        requested = endpoint.service_settings.model_id
        if requested and requested != deployment.model_id:
            raise IllegalArgumentException(
                f"Deployment [{deployment_id}] uses model [{deployment.model_id}] which does not match the model "
                f"[{requested}] in the request."
            )
        config = deployment.config
        return endpoint.with_deployment(
            num_allocations=config.number_of_allocations,
            num_threads=config.threads_per_allocation,
            adaptive_allocations=config.adaptive_allocations,
            model_id=deployment.model_id,
        )

    async def _wait_started(self, deployment: Deployment, endpoint: Endpoint, timeout: TimeValue) -> None:
        if not await deployment.wait_started(timeout.seconds):
            raise StatusException(
                f"Timed out after [{timeout.text}] waiting for model deployment to start. "
                "Use the trained model stats API to track the state of the deployment.",
                408,
            )
        if deployment.state is DeploymentState.FAILED:
            # The endpoint goes; the failed deployment stays visible in stats until replaced.
            self._repo.delete(_KIND, endpoint.inference_id)
            self._repo.delete("deployment", deployment.deployment_id)
            raise StatusException(
                f"Could not start deployment [{deployment.deployment_id}] of model "
                f"[{deployment.model_id}]: {deployment.reason}",
                500,
            )

    # -- deleting and updating ---------------------------------------------------------------

    async def delete(self, inference_id: str, task_type: str | None, dry_run: bool, force: bool) -> dict[str, Any]:
        check_deletable(inference_id)
        endpoint = self._stored(inference_id)
        if endpoint is None:
            raise _not_found(inference_id)
        if task_type is not None and parse_task_type(task_type) != endpoint.task_type:
            raise task_type_mismatch(parse_task_type(task_type), endpoint.task_type)
        # A standalone service has no pipelines or mappings that could reference the endpoint.
        if dry_run:
            return {"acknowledged": False, "pipelines": [], "indexes": [], "error_message": ""}
        async with self._lock:
            if endpoint.service_settings.deployment_id is None:
                await self._records.stop(endpoint.deployment_id)
            self._repo.delete(_KIND, inference_id)
        return {"acknowledged": True, "pipelines": [], "indexes": []}

    async def update(self, inference_id: str, task_type: str | None, body: dict[str, Any] | None) -> dict[str, Any]:
        async with self._lock:
            current = self._stored(inference_id)
            if current is None:
                if preconfigured_endpoint(inference_id) is not None:
                    current = preconfigured_endpoint(inference_id)
                else:
                    raise _not_found(inference_id)
            updated = parse_update_request(current, task_type, body)
            deployment = self._manager.get(updated.deployment_id)
            if updated.service_settings.deployment_id is not None:
                raise StatusException(
                    f"Cannot update inference endpoint [{inference_id}]: its deployment "
                    f"[{updated.deployment_id}] is not owned by the endpoint",
                    409,
                )
            config = deployment_config(updated)
            if deployment is not None:
                await deployment.reconfigure(config)
                self._records.save(deployment.config)
            self._repo.put(_KIND, inference_id, updated.to_persisted())
        return self._render(updated)

    # -- inference ---------------------------------------------------------------------------

    async def infer(
        self, inference_id: str, task_type: str | None, body: dict[str, Any], timeout: TimeValue
    ) -> dict[str, Any]:
        endpoint = self.find(inference_id)
        request = parse_infer_request(task_type, endpoint, body)
        deployment = self._manager.get(endpoint.deployment_id)
        if deployment is None and preconfigured_endpoint(inference_id) is not None:
            # Elasticsearch deploys a preconfigured endpoint on its first use (`maybeStartDeployment`).
            async with self._lock:
                deployment = self._manager.get(endpoint.deployment_id) or self._records.start(
                    deployment_config(endpoint)
                )
            await self._wait_started(deployment, endpoint, timeout)
        if deployment is None:
            raise StatusException(
                f"Trained model deployment [{endpoint.deployment_id}] is not allocated to any nodes", 409
            )
        try:
            results = await deployment.infer(request.input, timeout.seconds)
        except TimeoutError:
            raise StatusException(f"timeout [{timeout.text}] waiting for inference result", 408) from None
        assert deployment.tokenizer is not None
        vocab = deployment.tokenizer.vocab
        return {
            endpoint.task_type: [
                {"is_truncated": r.is_truncated, "embedding": to_token_weights(r.vector, vocab)} for r in results
            ]
        }

    def restore(self) -> None:
        self._records.restore()
