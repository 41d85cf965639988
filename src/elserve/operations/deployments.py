"""Deployments that outlive a restart: each one started is recorded, and restored at start-up."""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import replace

from elserve.deployments.adaptive import AdaptiveAllocations
from elserve.deployments.backend import DeploymentBackend, ServedDeployment
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.states import DeploymentState
from elserve.store import Repository

log = logging.getLogger("elserve.deployments")
_KIND = "deployment"
# Per backend: held while a deployment's live settings and its record are changed together (an update
# through the API, or one followed from the shared store), so a pass over the store never sees, and
# undoes, an update half made. Several operations build their own `DeploymentRecords` on one backend.
_CHANGING: weakref.WeakKeyDictionary[DeploymentBackend, asyncio.Lock] = weakref.WeakKeyDictionary()


class DeploymentRecords:
    def __init__(self, repo: Repository, manager: DeploymentBackend) -> None:
        self._repo = repo
        self._manager = manager

    def changing(self) -> asyncio.Lock:
        """Hold it to change a deployment's settings and save its record as one step."""
        return _CHANGING.setdefault(self._manager, asyncio.Lock())

    def start(self, config: DeploymentConfig) -> ServedDeployment:
        """Record the deployment, then start it (the record first: a crash mid-start restores it)."""
        existing = self._manager.get(config.deployment_id)
        if existing is not None:
            # A failed deployment is replaced by the next start of the same id.
            self._manager.forget(config.deployment_id)
        self._manager.check_start(config)  # 429 when its allocations do not all fit the node
        self._repo.put(_KIND, config.deployment_id, config.to_persisted())
        return self._manager.start(config)

    def save(self, config: DeploymentConfig) -> None:
        self._repo.put(_KIND, config.deployment_id, config.to_persisted())

    async def stop(self, deployment_id: str) -> None:
        self._repo.delete(_KIND, deployment_id)
        await self._manager.stop(deployment_id)

    def attach(self, deployment_id: str) -> ServedDeployment | None:
        """A deployment another front end recorded in the shared store, started here too (each front end
        with the local backend runs its own allocations of every recorded deployment); None: not recorded."""
        doc = self._repo.get(_KIND, deployment_id)
        if doc is None:
            return None
        existing = self._manager.get(deployment_id)
        if existing is not None:
            return existing
        log.info("starting deployment [%s], recorded by another front end", deployment_id)
        return self._manager.start(DeploymentConfig.from_persisted(doc))

    async def reconcile(self) -> None:
        """Towards the store's records, idempotently: a recorded deployment missing here starts, one whose
        record another front end deleted stops. The store is shared: what it holds is the desired state."""
        recorded = dict(self._repo.list(_KIND))
        for deployment in self._manager.all():
            doc = recorded.get(deployment.deployment_id)
            if doc is None:
                log.info("stopping deployment [%s], deleted by another front end", deployment.deployment_id)
                await self._manager.stop(deployment.deployment_id)
            elif deployment.state in (DeploymentState.STARTING, DeploymentState.STARTED):
                async with self.changing():
                    await self._follow(deployment, self._repo.get(_KIND, deployment.deployment_id) or doc)
        self.restore(recorded)

    async def _follow(self, deployment: ServedDeployment, doc: dict) -> None:
        """An update made through another front end: its adaptive settings, and its allocations unless the
        adaptive scaler sets them (each front end scales its own allocations by its own load)."""
        try:
            wanted = DeploymentConfig.from_persisted(doc)
        except (TypeError, ValueError, KeyError):
            return  # an unreadable record: restore() reports it when this front end starts
        live = deployment.config
        changed_adaptive = wanted.adaptive_allocations != live.adaptive_allocations
        changed_count = not wanted.adaptive_enabled and wanted.number_of_allocations != live.number_of_allocations
        if not (changed_adaptive or changed_count):
            return
        log.info("deployment [%s]: applying an update made by another front end", deployment.deployment_id)
        try:
            self._manager.check_update(deployment, wanted.number_of_allocations)
            await deployment.reconfigure(wanted)
        except Exception as exc:
            log.warning("deployment [%s]: the update could not be applied here: %s", deployment.deployment_id, exc)

    def restore(self, recorded: dict[str, dict] | None = None) -> None:
        """Start every recorded deployment. One that cannot even be created does not stop the server:
        it is kept `failed`, with its reason in stats, for the user to stop or delete."""
        records = self._repo.list(_KIND) if recorded is None else list(recorded.items())
        for deployment_id, doc in records:
            if self._manager.get(deployment_id) is not None:
                continue
            try:
                config = DeploymentConfig.from_persisted(doc)
            except (TypeError, ValueError, KeyError) as exc:
                self._manager.add_failed(
                    _placeholder(deployment_id, doc),
                    f"its stored record cannot be read ({type(exc).__name__}: {exc}); "
                    "delete the deployment or its inference endpoint to remove it",
                )
                continue
            log.info("restoring deployment [%s]", deployment_id)
            try:
                self._manager.start(config)
            except Exception as exc:
                self._manager.add_failed(config, f"it could not be restored ({type(exc).__name__}: {exc})")


def _placeholder(deployment_id: str, doc: object) -> DeploymentConfig:
    """What can be told of an unreadable record: its id, its model id if it has a readable one."""
    model_id = doc.get("model_id") if isinstance(doc, dict) else None
    owner = doc.get("owner_endpoint") if isinstance(doc, dict) else None
    return DeploymentConfig(
        deployment_id=deployment_id,
        model_id=model_id if isinstance(model_id, str) else "unknown",
        number_of_allocations=0,
        owner_endpoint=owner if isinstance(owner, str) else None,
    )


def adaptive_config(adaptive: AdaptiveAllocations | None) -> AdaptiveAllocations | None:
    """An endpoint's or a request's `adaptive_allocations` as the deployment holds them: `enabled` a plain bool."""
    if adaptive is None:
        return None
    return replace(adaptive, enabled=adaptive.is_enabled)


def adaptive_allocations(config: DeploymentConfig) -> AdaptiveAllocations | None:
    """A deployment's adaptive settings as endpoints and responses hold them (the other direction)."""
    return config.adaptive_allocations


def initial_allocations(number_of_allocations: int | None, adaptive: AdaptiveAllocations | None) -> int:
    """Elasticsearch's start: the explicit number, else the adaptive minimum when above 0, else 1."""
    if number_of_allocations is not None:
        return number_of_allocations
    floor = adaptive.floor if adaptive is not None and adaptive.is_enabled else 0
    if floor > 0:
        return floor
    return 1
