"""The trained-model API: which models and deployments exist, and their statistics."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from elserve.deployments.deployment import Deployment
from elserve.deployments.manager import DeploymentManager
from elserve.errors import ResourceNotFoundException
from elserve.models.catalogue import BUILTIN_MODELS
from elserve.models.downloads import DownloadStatus, ModelDownloads
from elserve.store import Repository


@dataclass(frozen=True)
class ModelEntry:
    """One stats entry: a model and, when deployed, one of its deployments."""

    model_id: str
    model_bytes: int
    deployment: Deployment | None


def _model_bytes(path: Path | None) -> int:
    if path is None:
        return 0
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _matches(expression: str, *names: str) -> bool:
    patterns = [p.strip() for p in expression.split(",") if p.strip()]
    return any(p in ("_all", "*") or fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


class TrainedModelOperations:
    def __init__(self, repo: Repository, manager: DeploymentManager, downloads: ModelDownloads) -> None:
        self._repo = repo
        self._manager = manager
        self._downloads = downloads

    def known_models(self) -> list[str]:
        """Models that exist here: downloaded, downloading, failed to download, or deployed."""
        ids = {d.model_id for d in self._manager.all()}
        for spec in BUILTIN_MODELS:
            if self._downloads.state(spec.model_id).status is not DownloadStatus.ABSENT:
                ids.add(spec.model_id)
        return sorted(ids)

    def stats(
        self, expression: str | None, allow_no_match: bool, from_: int, size: int
    ) -> tuple[int, list[ModelEntry]]:
        """(count of matching models, one entry per deployment or per undeployed model)."""
        expression = expression or "_all"
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
            size_bytes = _model_bytes(self._downloads.state(model_id).path)
            own = [d for d in deployments if d.model_id == model_id]
            by_deployment = [d for d in own if _matches(expression, d.deployment_id)]
            chosen = by_deployment if by_deployment and not _matches(expression, model_id) else own
            entries.extend(ModelEntry(model_id, size_bytes, d) for d in chosen)
            if not chosen:
                entries.append(ModelEntry(model_id, size_bytes, None))
        return len(models), entries


def _has_wildcard(expression: str) -> bool:
    return expression in ("_all", "*") or "*" in expression
