"""All deployments of this server, by deployment id."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from elserve.deployments.autoscaler import ScalerTimings
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import (
    DEFAULT_MAX_BATCH_TOKENS,
    Deployment,
    Observer,
)
from elserve.models.downloads import ModelDownloads

log = logging.getLogger("elserve.deployments")


async def _no_model_dir() -> Path:
    raise RuntimeError("a failed deployment has no model")


class DeploymentManager:
    def __init__(
        self,
        downloads: ModelDownloads,
        *,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        timings: ScalerTimings = ScalerTimings(),
        observer: Observer | None = None,
        precision: str = "exact",
    ) -> None:
        self.downloads = downloads
        self._deployments: dict[str, Deployment] = {}
        self._starting: dict[str, asyncio.Task] = {}
        self._max_batch_tokens = max_batch_tokens
        self._timings = timings
        self._observer = observer
        self._precision = precision

    def get(self, deployment_id: str) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def all(self) -> list[Deployment]:
        return sorted(self._deployments.values(), key=lambda d: (d.model_id, d.deployment_id))

    def of_model(self, model_id: str) -> list[Deployment]:
        return [d for d in self.all() if d.model_id == model_id]

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

    def forget(self, deployment_id: str) -> None:
        """Drop a deployment at once (a failed one, about to be replaced); its workers are killed."""
        deployment = self._deployments.pop(deployment_id, None)
        if deployment is not None:
            deployment.kill()

    async def stop(self, deployment_id: str) -> None:
        deployment = self._deployments.pop(deployment_id, None)
        if deployment is None:
            return
        task = self._starting.pop(deployment_id, None)
        if task is not None and not task.done():
            task.cancel()
        await deployment.stop()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(d) for d in list(self._deployments)), return_exceptions=True)
