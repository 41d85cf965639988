"""The inference endpoint API: create, read, update, delete, and infer.

The order of the steps is Elasticsearch's (`TransportPutInferenceModelAction`):
validate, check the id against deployments, store, then download and deploy
within `timeout`. Unlike Elasticsearch, every validation runs before anything
is stored, the node's capacity included (a refused PUT, 429, stores nothing),
and a start that fails takes its endpoint back out (spec decision 2) with its
deployment (Elasticsearch deletes a deployment that fails to start); a timeout
(408) leaves the endpoint stored and the deployment going on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from elserve.chunking.settings import DEFAULT_CHUNKING_SETTINGS
from elserve.deployments import messages
from elserve.deployments.backend import DeploymentBackend, ServedDeployment
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.states import DeploymentState
from elserve.endpoints.elasticsearch_service import check_elser_chunk_size
from elserve.endpoints.endpoint import Endpoint
from elserve.endpoints.infer_request import (
    InferRequest,
    body_parsed_before_lookup,
    parse_infer_body,
    parse_infer_request,
)
from elserve.endpoints.lookup import (
    check_infer_task_type_matches,
    check_task_type_matches,
    endpoint_already_exists,
    endpoint_not_found,
    is_all_or_wildcard,
)
from elserve.endpoints.preconfigured import check_deletable, preconfigured_endpoints
from elserve.endpoints.put_request import PutRequest, parse_put_request
from elserve.endpoints.task_types import parse_path_task_type
from elserve.endpoints.update_request import apply_update, parse_update_body
from elserve.errors import ResourceNotFoundException, StatusException
from elserve.models.catalogue import is_elser_model
from elserve.operations.chunked_inference import RESULT_FIELD, infer_chunked
from elserve.operations.deployments import (
    DeploymentRecords,
    adaptive_allocations,
    adaptive_config,
    initial_allocations,
)
from elserve.runtime import to_token_weights
from elserve.store import Repository, is_shared
from elserve.timevalue import TimeValue

_KIND = "endpoint"


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


def _preconfigured(inference_id: str) -> Endpoint | None:
    return next((e for e in preconfigured_endpoints() if e.inference_id == inference_id), None)


class InferenceOperations:
    def __init__(self, repo: Repository, manager: DeploymentBackend) -> None:
        self._repo = repo
        self._manager = manager
        self._records = DeploymentRecords(repo, manager)
        self._lock = asyncio.Lock()  # create/delete/update of endpoints are serialised
        # Other front ends write the store too: a deployment recorded there may not have started here yet.
        self._shared = is_shared(repo)

    # -- reading -----------------------------------------------------------------------------

    def _stored(self, inference_id: str) -> Endpoint | None:
        doc = self._repo.get(_KIND, inference_id)
        return None if doc is None else Endpoint.from_persisted(doc)

    def find(self, inference_id: str) -> Endpoint:
        endpoint = self._stored(inference_id) or _preconfigured(inference_id)
        if endpoint is None:
            raise endpoint_not_found(inference_id)
        return endpoint

    def _all(self) -> list[Endpoint]:
        stored = {key: Endpoint.from_persisted(doc) for key, doc in self._repo.list(_KIND)}
        for endpoint in preconfigured_endpoints():
            stored.setdefault(endpoint.inference_id, endpoint)
        return [stored[key] for key in sorted(stored)]

    def endpoints_using(self, deployment_id: str) -> list[str]:
        """Ids of the stored endpoints that infer through this deployment."""
        stored = (Endpoint.from_persisted(doc) for _, doc in self._repo.list(_KIND))
        return [e.inference_id for e in stored if e.deployment_id == deployment_id]

    def _render(self, endpoint: Endpoint) -> dict[str, Any]:
        deployment = self._manager.get(endpoint.deployment_id)
        live = None if deployment is None else deployment.config.number_of_allocations
        return endpoint.to_dict(live_allocations=live)

    def get(self, inference_id: str | None, task_type: str | None) -> dict[str, Any]:
        """`GET /_inference[/{task_type}][/{id}]` (`_all` and `*` list)."""
        wanted = parse_path_task_type(task_type)
        if inference_id is None or is_all_or_wildcard(inference_id):
            endpoints = [e for e in self._all() if wanted.is_any_or_same(e.task_type)]
            return {"endpoints": [self._render(e) for e in endpoints]}
        endpoint = self.find(inference_id)
        check_task_type_matches(wanted, endpoint.task_type)
        return {"endpoints": [self._render(endpoint)]}

    # -- creating ----------------------------------------------------------------------------

    def _live_deployment_ids(self) -> list[str]:
        # A failed deployment does not hold its id: the next PUT replaces it.
        return [d.deployment_id for d in self._manager.all() if d.state is not DeploymentState.FAILED]

    def _passes_through(self, model_id: str) -> bool:
        registry = self._manager.downloads.catalogue.registry
        model = registry.get(model_id) if registry is not None else None
        return model is not None and "pass_through" in (model.config.get("inference_config") or {})

    async def put(
        self, inference_id: str, task_type: str | None, body: dict[str, Any], timeout: TimeValue
    ) -> tuple[dict[str, Any], list[str]]:
        async with self._lock:
            catalogue = self._manager.downloads.catalogue  # built-ins, then uploaded models
            request = parse_put_request(
                inference_id,
                task_type,
                body,
                trained_model_ids=self._live_deployment_ids(),
                known_models=[m for m in catalogue.model_ids() if not self._passes_through(m)],
            )
            endpoint = request.endpoint if request.pending is None else self._attach(request)
            assert endpoint is not None  # a request without a pending deployment has its endpoint
            if self._passes_through(endpoint.model_id):
                # elserve's endpoints answer sparse embeddings: a model whose output is passed
                # through as it is (`pass_through`) has none to give.
                raise StatusException(
                    f"model [{endpoint.model_id}] is a [pass_through] model; an inference endpoint needs a "
                    "[text_expansion] (sparse embedding) model",
                    400,
                )
            if catalogue.resolve(endpoint.model_id) is None:
                raise ResourceNotFoundException(
                    f"Could not deploy model [{endpoint.model_id}] as the model cannot be found."
                )
            if self._repo.get(_KIND, inference_id) is not None:
                raise endpoint_already_exists(inference_id)
            config = deployment_config(endpoint) if endpoint.owns_deployment else None
            if config is not None:
                self._manager.check_start(config)  # 429 when its allocations do not fit: nothing stored
            if not self._repo.create(_KIND, inference_id, endpoint.to_persisted()):
                raise endpoint_already_exists(inference_id)
            if config is None:
                return endpoint.to_dict(), list(request.warnings)
            try:
                deployment = self._records.start(config)
            except Exception:
                self._repo.delete(_KIND, inference_id)  # a start refused or broken stores nothing
                raise
        await self._wait_started(deployment, endpoint, timeout)
        return endpoint.to_dict(), list(request.warnings)

    def _attach(self, request: PutRequest) -> Endpoint:
        """With `deployment_id`: use that existing deployment and copy its settings, as Elasticsearch does."""
        deployment_id = request.deployment_id
        deployment = None if deployment_id is None else self._manager.get(deployment_id)
        if deployment is None:
            raise request.deployment_not_found()
        config = deployment.config
        return request.with_deployment(
            config.number_of_allocations,
            config.threads_per_allocation,
            adaptive_allocations(config),
            config.model_id,
        )

    async def _wait_started(self, deployment: ServedDeployment, endpoint: Endpoint, timeout: TimeValue) -> None:
        if not await deployment.wait_started(timeout.seconds):
            raise StatusException(
                f"Timed out after [{timeout.text}] waiting for model deployment to start. "
                "Use the trained model stats API to track the state of the deployment.",
                408,
            )
        if deployment.state is DeploymentState.FAILED:
            # Nothing stays behind: the endpoint goes, and its deployment with it, as Elasticsearch's
            # start action deletes a deployment that failed to start (`TransportStartTrainedModelDeploymentAction
            # .deleteFailedDeployment`); unless the user deleted the endpoint meanwhile and PUT it again.
            async with self._lock:
                if self._manager.get(deployment.deployment_id) is deployment:
                    self._repo.delete(_KIND, endpoint.inference_id)
                    await self._records.stop(deployment.deployment_id)
            raise StatusException(
                f"Could not start deployment [{deployment.deployment_id}] of model "
                f"[{deployment.model_id}]: {deployment.reason}",
                deployment.failure_status,
            )

    # -- deleting and updating ---------------------------------------------------------------

    async def delete(self, inference_id: str, task_type: str | None, dry_run: bool, force: bool) -> dict[str, Any]:
        wanted = parse_path_task_type(task_type)
        check_deletable(inference_id)
        endpoint = self._stored(inference_id)
        if endpoint is None:
            raise endpoint_not_found(inference_id)
        check_task_type_matches(wanted, endpoint.task_type)
        # A standalone service has no pipelines or mappings that could reference the endpoint,
        # so `force` has nothing to override.
        if dry_run:
            return {"acknowledged": False, "pipelines": [], "indexes": [], "error_message": ""}
        async with self._lock:
            if endpoint.owns_deployment:
                await self._records.stop(endpoint.deployment_id)
            self._repo.delete(_KIND, inference_id)
        return {"acknowledged": True, "pipelines": [], "indexes": []}

    async def update(self, inference_id: str, task_type: str | None, body: dict[str, Any] | None) -> dict[str, Any]:
        update = parse_update_body(inference_id, task_type, body)  # Elasticsearch reads the body first
        async with self._lock:
            current = self._stored(inference_id) or _preconfigured(inference_id)
            if current is None:
                raise endpoint_not_found(inference_id)
            deployment = self._manager.get(current.deployment_id)
            owner = None if deployment is None else deployment.config.owner_endpoint
            updated = apply_update(current, update, deployment_owner=owner)
            if updated == current:
                return self._render(current)
            if deployment is not None:
                self._manager.check_update(deployment, deployment_config(updated).number_of_allocations)
                async with self._records.changing():  # with the record, as one step (deployments.py)
                    await deployment.reconfigure(deployment_config(updated))
                    self._records.save(deployment.config)
            self._repo.put(_KIND, inference_id, updated.to_persisted())
        return self._render(updated)

    # -- inference ---------------------------------------------------------------------------

    async def infer(
        self,
        inference_id: str,
        task_type: str | None,
        body: dict[str, Any],
        timeout: TimeValue,
        source: bytes,
        priority: str | None = None,
    ) -> dict[str, Any]:
        """One inference request; `priority` (search | ingest) overrides the lane rule (deployments/lanes.py)."""
        if body_parsed_before_lookup(task_type):
            request = parse_infer_body(task_type, body, source=source)
            endpoint = self.find(inference_id)
            check_infer_task_type_matches(request.task_type, endpoint.task_type)
        else:
            endpoint = self.find(inference_id)
            request = parse_infer_request(task_type, endpoint, body, source=source)
        deployment = await self._deployment_for(endpoint, timeout)
        if request.chunking is not None:
            return await self._infer_chunked(endpoint, deployment, request, timeout)
        try:
            results = await deployment.infer(list(request.input), timeout.seconds, priority)
        except TimeoutError:
            raise StatusException(f"timeout [{timeout.text}] waiting for inference result", 408) from None
        assert deployment.tokenizer is not None
        names = deployment.tokenizer.names
        return {
            str(endpoint.task_type): [
                {"is_truncated": r.is_truncated, "embedding": to_token_weights(r.vector, names)} for r in results
            ]
        }

    async def _infer_chunked(
        self, endpoint: Endpoint, deployment: ServedDeployment, request: InferRequest, timeout: TimeValue
    ) -> dict[str, Any]:
        assert request.chunking is not None
        settings = request.chunking.settings
        if settings is None:
            settings = endpoint.chunking_settings or DEFAULT_CHUNKING_SETTINGS
        elif endpoint.service_settings.deployment_id is None and is_elser_model(endpoint.model_id):
            check_elser_chunk_size(settings)
        try:
            chunks = await infer_chunked(
                deployment, list(request.input), settings, timeout.seconds, request.chunking.return_text
            )
        except TimeoutError:
            raise StatusException(f"timeout [{timeout.text}] waiting for inference result", 408) from None
        return {RESULT_FIELD: chunks}

    async def _deployment_for(self, endpoint: Endpoint, timeout: TimeValue) -> ServedDeployment:
        deployment = self._manager.get(endpoint.deployment_id)
        if deployment is None and _preconfigured(endpoint.inference_id) is not None:
            # Elasticsearch deploys a preconfigured endpoint on its first use (`maybeStartDeployment`).
            async with self._lock:
                deployment = self._manager.get(endpoint.deployment_id) or self._records.start(
                    deployment_config(endpoint)
                )
            await self._wait_started(deployment, endpoint, timeout)
        if self._shared and (deployment is None or deployment.state is DeploymentState.STARTING):
            # Made through another front end: started here now, or starting since this one's last pass
            # over the store; the request waits for it as the creating PUT did. A start failing here fails
            # this request (409 below), not the endpoint: it is still served by the others.
            if deployment is None:
                async with self._lock:
                    deployment = self._records.attach(endpoint.deployment_id)
            if deployment is not None:
                await deployment.wait_started(timeout.seconds)
        if deployment is None:
            raise messages.not_allocated(endpoint.deployment_id)
        return deployment

    def restore(self) -> None:
        self._records.restore()

    async def reconcile(self) -> None:
        """With a shared store: this front end's deployments towards the store's records (deployments.py)."""
        async with self._lock:
            await self._records.reconcile()
