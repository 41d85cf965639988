"""The trained-model API: which models and deployments exist, and their statistics."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from elserve.deployments.backend import DeploymentBackend, ServedDeployment
from elserve.deployments.batcher import DEFAULT_MAX_BATCH_TOKENS
from elserve.deployments.config import DEFAULT_PRIORITY, DEFAULT_QUEUE_CAPACITY, DeploymentConfig
from elserve.deployments.memory import estimate
from elserve.deployments.priority import Priority
from elserve.deployments.states import DeploymentState
from elserve.deployments.validation import start_errors, update_errors
from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.endpoints.ids import validate_deployment_id_length
from elserve.errors import (
    ActionRequestValidationException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    StatusException,
)
from elserve.models.cache import model_size_bytes
from elserve.models.catalogue import BUILTIN_MODELS, ModelSpec, resolve
from elserve.models.downloads import DownloadState, DownloadStatus, ModelDownloads
from elserve.models.registry import RegisteredModel
from elserve.operations.deployments import DeploymentRecords, adaptive_config, initial_allocations
from elserve.operations.inference_cache import InferenceCaches
from elserve.operations.model_aliases import ModelAliases
from elserve.operations.model_upload import ModelUploads, not_found
from elserve.operations.trained_model_config import UnservedModel, parse_put_config
from elserve.store import Repository
from elserve.timevalue import TimeValue

log = logging.getLogger("elserve.models")


@dataclass(frozen=True)
class ConfigEntry:
    """One `trained_model_configs` entry: a catalogue model (`spec`) or an uploaded one (`uploaded`)."""

    model_id: str
    model_bytes: int
    download: DownloadState
    spec: ModelSpec | None = None
    uploaded: RegisteredModel | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One stats entry: a model and, when deployed, one of its deployments."""

    model_id: str
    model_bytes: int
    deployment: ServedDeployment | None
    # (per-deployment, per-allocation) bytes: the deployment's (measured once its workers run), else
    # a deployment's of the model as estimated from its files (deployments/memory.py).
    memory_per: tuple[int, int]


def _matches(expression: str, *names: str) -> bool:
    patterns = [p.strip() for p in expression.split(",") if p.strip()]
    return any(p in ("_all", "*") or fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


class TrainedModelOperations:
    def __init__(
        self,
        repo: Repository,
        manager: DeploymentBackend,
        downloads: ModelDownloads,
        endpoints_using: Callable[[str], list[str]],
        uploads: ModelUploads,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        self._max_batch_tokens = max_batch_tokens
        self._manager = manager
        self._downloads = downloads
        self.uploads = uploads
        self._records = DeploymentRecords(repo, manager)
        self._endpoints_using = endpoints_using  # inference endpoints that use a deployment id
        self.aliases = ModelAliases(repo)
        self.inference_caches = InferenceCaches()

    def model_bytes(self, model_id: str) -> int:
        """The model's files; for an upload still missing parts, the definition's announced length."""
        uploaded = self.uploads.registry.get(model_id)
        if uploaded is not None and not uploaded.fully_defined:
            return self.uploads.announced_length(model_id)
        path = self._downloads.state(model_id).path
        return 0 if path is None else model_size_bytes(path)

    def model_dir(self, model_id: str) -> Path | None:
        """The installed directory, None until the model is downloaded or fully defined."""
        if self._downloads.catalogue.resolve(model_id) is None:
            return None
        return self._downloads.state(model_id).path

    def memory_estimate(self, model_id: str) -> tuple[int, int]:
        """(per-deployment, per-allocation) bytes a deployment of the model needs before any of its
        workers runs (deployments/memory.py: derived from its files, once they are here)."""
        return estimate(self.model_dir(model_id), self._max_batch_tokens)

    def known_models(self) -> list[str]:
        """Models that exist here: downloaded, downloading, failed to download, deployed, or uploaded."""
        ids = {d.model_id for d in self._manager.all()}
        for spec in BUILTIN_MODELS:
            if self._downloads.state(spec.model_id).status is not DownloadStatus.ABSENT:
                ids.add(spec.model_id)
        ids.update(m.model_id for m in self.uploads.registry.list())
        return sorted(ids)

    def configs(self, expression: str | None, allow_no_match: bool, from_: int, size: int) -> list[ConfigEntry]:
        """`GET /_ml/trained_models[/{id}]`: the matching models that exist here."""
        expression = self.aliases.expand(expression or "_all")
        models = [m for m in self.known_models() if _matches(expression, m)]
        if not models and not (allow_no_match and _has_wildcard(expression)):
            raise ResourceNotFoundException(f"No known trained model with model_id [{expression}]")
        return [self._config_entry(m) for m in models[from_ : from_ + size]]

    def _config_entry(self, model_id: str) -> ConfigEntry:
        uploaded = self.uploads.registry.get(model_id)
        if uploaded is not None:
            download = (
                self._downloads.state(model_id)
                if uploaded.fully_defined
                else DownloadState(model_id, DownloadStatus.ABSENT)
            )
            return ConfigEntry(model_id, self.model_bytes(model_id), download, uploaded=uploaded)
        return ConfigEntry(
            model_id, self.model_bytes(model_id), self._downloads.state(model_id), spec=self._catalogue_spec(model_id)
        )

    def put_model(self, model_id: str, body: dict[str, Any] | None, raw: bytes | None = None) -> ConfigEntry:
        """`PUT /_ml/trained_models/{id}`: for a catalogue model, start its download (the ELSER idiom);
        for any other id, register an uploaded model's configuration (eland's first step)."""
        if resolve(model_id) is not None:
            spec = self._catalogue_spec(model_id)
            if self._downloads.state(model_id).status is not DownloadStatus.ABSENT:
                raise ResourceAlreadyExistsException(f"Trained machine learning model [{model_id}] already exists")
            return ConfigEntry(model_id, 0, self._downloads.start(model_id), spec=spec)
        try:
            config = parse_put_config(model_id, body or {}, raw)
            unserved = None
        except UnservedModel as refusal:  # after Elasticsearch's own checks of the id
            unserved = refusal
        # `TransportPutTrainedModelAction.masterOperation`: a model id may not be an alias, nor a current
        # deployment's id (checked before the id's own existence).
        if self.aliases.model_of(model_id) is not None:
            raise StatusException(
                f"requested model_id [{model_id}] is the same as an existing model_alias. Model model_aliases and "
                "ids must be unique",
                400,
            )
        if self._manager.get(model_id) is not None:
            raise StatusException(
                f"Cannot create model [{model_id}] the id is the same as an current model deployment", 400
            )
        if unserved is not None:
            raise unserved
        uploaded = self.uploads.create(config)
        return ConfigEntry(model_id, 0, DownloadState(model_id, DownloadStatus.ABSENT), uploaded=uploaded)

    async def delete(self, model_id: str, force: bool) -> None:
        """`DELETE /_ml/trained_models/{id}` (`TransportDeleteTrainedModelAction`): refused while deployed
        unless `force`, which stops the deployments first."""
        if resolve(model_id) is not None:
            # elserve decision: a built-in id always resolves to its source; there is nothing to delete.
            raise StatusException(f"Unable to delete model [{model_id}] as it is required by machine learning", 400)
        if self.uploads.registry.get(model_id) is None:
            raise not_found(model_id)
        deployments = self._manager.of_model(model_id)
        if deployments and not force:
            raise StatusException(
                f"Cannot delete model [{model_id}] as it is currently deployed; use force to delete the model", 409
            )
        for deployment in deployments:
            await self._records.stop(deployment.deployment_id)
        await asyncio.to_thread(self.uploads.delete, model_id)  # files removed off the event loop
        self.aliases.delete_model(model_id)

    def _catalogue_spec(self, model_id: str) -> ModelSpec:
        if self._downloads.catalogue.resolve(model_id) is None:
            raise ResourceNotFoundException(f"Could not find trained model [{model_id}]")
        # As served: a built-in's fallback (its description says why) once that is what is installed.
        return self._downloads.spec(model_id)

    def stats(
        self, expression: str | None, allow_no_match: bool, from_: int, size: int
    ) -> tuple[int, list[ModelEntry]]:
        """(count of matching models, one entry per deployment or per undeployed model)."""
        expression = self.aliases.expand(expression or "_all")
        deployments = self._manager.all()
        models = [
            m
            for m in self.known_models()
            if _matches(expression, m, *(d.deployment_id for d in deployments if d.model_id == m))
        ]
        if not models and not (allow_no_match and _has_wildcard(expression)):
            raise ResourceNotFoundException(f"No known trained model with model_id [{expression}]")
        models = models[from_ : from_ + size]
        entries: list[ModelEntry] = []
        for model_id in models:
            size_bytes = self.model_bytes(model_id)
            own = [d for d in deployments if d.model_id == model_id]
            by_deployment = [d for d in own if _matches(expression, d.deployment_id)]
            chosen = by_deployment if by_deployment and not _matches(expression, model_id) else own
            entries.extend(ModelEntry(model_id, size_bytes, d, d.memory_per()) for d in chosen)
            if not chosen:
                entries.append(ModelEntry(model_id, size_bytes, None, self.memory_estimate(model_id)))
        return len(models), entries

    # -- deployments -------------------------------------------------------------------------

    async def start(self, request: StartRequest, timeout: TimeValue) -> ServedDeployment:
        deployment_id = request.deployment_id or request.model_id
        validate_deployment_id_length(deployment_id)
        adaptive = request.adaptive_allocations
        errors = start_errors(
            request.number_of_allocations,
            request.threads_per_allocation,
            adaptive,
            request.queue_capacity,
            request.priority,
        )
        if errors:
            raise ActionRequestValidationException(errors)
        if self._manager.get(deployment_id) is not None:
            raise StatusException(
                "Could not start model deployment because an existing deployment with the same id "
                f"[{deployment_id}] exist",
                400,
            )
        self.check_deployable(request.model_id)
        if deployment_id != request.model_id and self._exists(deployment_id):
            raise StatusException(
                f"Deployment id [{deployment_id}] is the same as an another model which is not the model being "
                "deployed. Deployment id can be the same as the model being deployed but cannot match a different "
                "model",
                400,
            )
        deployment = self._records.start(
            DeploymentConfig(
                deployment_id=deployment_id,
                model_id=request.model_id,
                number_of_allocations=initial_allocations(request.number_of_allocations, adaptive),
                threads_per_allocation=request.threads_per_allocation,
                queue_capacity=request.queue_capacity,
                priority=request.priority,
                adaptive_allocations=adaptive_config(adaptive),
                cache_size=request.cache_size,
            )
        )
        if request.wait_for != "starting" and not await deployment.wait_until(request.wait_for, timeout.seconds):
            raise StatusException(
                f"Timed out after [{timeout.text}] waiting for trained model deployment [{deployment_id}] to "
                "start. Use the trained model stats API to track the state of the deployment and try again once "
                "it has started.",
                408,
            )
        if deployment.state is DeploymentState.FAILED:
            # Elasticsearch deletes a deployment that failed to start before answering
            # (`TransportStartTrainedModelDeploymentAction.deleteFailedDeployment`): nothing stays behind,
            # and the same start can be tried again. One that fails after a 408 stays, `failed`, in stats.
            if self._manager.get(deployment_id) is deployment:
                await self._records.stop(deployment_id)
            raise StatusException(f"Could not start model deployment [{deployment_id}]: {deployment.reason}", 500)
        if deployment.state is DeploymentState.STOPPING:
            # Stopped by another request while this one waited: Elasticsearch's DeploymentStartedPredicate
            # (TransportStartTrainedModelDeploymentAction.java) answers at once, with this 400.
            raise StatusException(
                "Error waiting for the model deployment to start. The trained model assignment was removed while "
                "waiting",
                400,
            )
        return deployment

    def _exists(self, model_id: str) -> bool:
        return resolve(model_id) is not None or self.uploads.registry.get(model_id) is not None

    def check_deployable(self, model_id: str) -> None:
        """404 for an unknown model, and for an upload still missing its definition or vocabulary."""
        if self._downloads.catalogue.resolve(model_id) is not None:
            return
        if self.uploads.registry.get(model_id) is None:
            raise not_found(model_id)
        # Messages.MODEL_DEFINITION_NOT_FOUND
        raise ResourceNotFoundException(f"Could not find trained model definition [{model_id}]")

    def _deployment(self, deployment_id: str) -> ServedDeployment:
        deployment = self._manager.get(deployment_id)
        if deployment is None:
            raise ResourceNotFoundException(f"No known model deployment with id [{deployment_id}]")
        return deployment

    async def update(
        self, deployment_id: str, number_of_allocations: int | None, adaptive: AdaptiveAllocations | None
    ) -> ServedDeployment:
        deployment = self._deployment(deployment_id)
        errors = update_errors(number_of_allocations, adaptive)
        if errors:
            raise ActionRequestValidationException(errors)
        owner = deployment.config.owner_endpoint
        if owner is not None and owner in self._endpoints_using(deployment_id):
            raise StatusException(
                f"Cannot update deployment [{deployment_id}] as it was created by inference endpoint [{owner}]. "
                "This model deployment must be updated through the inference API.",
                409,
            )
        if number_of_allocations is None and adaptive is None:
            return deployment
        if deployment.state is not DeploymentState.STARTED:
            raise StatusException("cannot update deployment that is not in [started] state", 409)
        config = deployment.config
        if adaptive is not None:
            config = replace(config, adaptive_allocations=adaptive_config(adaptive))
        if number_of_allocations is not None:
            self._manager.check_update(deployment, number_of_allocations)
            config = config.with_allocations(number_of_allocations)
        async with self._records.changing():  # with the record: a shared store's pass sees both or neither
            await deployment.reconfigure(config)
            self._records.save(deployment.config)
        return deployment

    def clear_cache(self, deployment_id: str) -> None:
        """`TransportClearDeploymentCacheAction`: the deployment's inference cache is emptied."""
        self.inference_caches.clear(self._deployment(deployment_id))

    def put_alias(self, model_alias: str, model_id: str, reassign: bool) -> None:
        self.aliases.put(model_alias, model_id, reassign, self._model_config, self._manager.of_model)

    def _model_config(self, model_id: str) -> dict[str, Any] | None:
        uploaded = self.uploads.registry.get(model_id)
        if uploaded is not None:
            return dict(uploaded.config)
        if model_id in self.known_models():
            return {"model_type": "pytorch", "inference_config": {"text_expansion": {}}}
        return None

    async def stop(self, deployment_id: str, force: bool, allow_no_match: bool) -> None:
        if self._manager.get(deployment_id) is None:
            if allow_no_match:
                return
            raise ResourceNotFoundException(f"No known model deployment with id [{deployment_id}]")
        users = self._endpoints_using(deployment_id)
        if users and not force:
            raise StatusException(
                f"Cannot stop deployment [{deployment_id}] as it is used by inference endpoint [{users[0]}]", 409
            )
        await self._records.stop(deployment_id)


def _has_wildcard(expression: str) -> bool:
    return expression in ("_all", "*") or "*" in expression


@dataclass(frozen=True)
class StartRequest:
    """`POST /_ml/trained_models/{model_id}/deployment/_start`, its options read from query and body."""

    model_id: str
    deployment_id: str | None = None
    number_of_allocations: int | None = None
    threads_per_allocation: int = 1
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    priority: Priority = DEFAULT_PRIORITY
    adaptive_allocations: AdaptiveAllocations | None = None
    wait_for: str = "started"
    cache_size: str | None = None  # `ByteSizeValue.getStringRep()` of the size given
