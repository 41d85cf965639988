"""Imported and uploaded models: their configurations, kept in the store (kind `trained_model`).

A model imported with `elserve models import` (source known, files in the
model cache) or uploaded as Elasticsearch's REST API does (`PUT
/_ml/trained_models/{id}` then definition parts and vocabulary: no source) is
one `RegisteredModel`. The `Catalogue` resolves the built-in ids first, then
these.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from elserve.store import Repository

KIND = "trained_model"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RegisteredModel:
    """One imported or uploaded model.

    `config` is the trained model configuration as Elasticsearch takes it in
    `PUT /_ml/trained_models/{id}` (description, inference_config, input,
    tags, ...). `source` is `hf:...`, `file:...`, `elastic:...`, or None for a
    REST upload. `cache_key` names the installed directory in the
    `ModelCache`; it stays None until the model is fully defined.
    """

    model_id: str
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    source: str | None = None
    sha256: str | None = None
    cache_key: str | None = None
    fully_defined: bool = False
    create_time: int = field(default_factory=_now_ms)
    # Why an upload's completion check refused the model (it stays not fully defined); None otherwise.
    definition_error: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "config": dict(self.config),
            "source": self.source,
            "sha256": self.sha256,
            "cache_key": self.cache_key,
            "fully_defined": self.fully_defined,
            "create_time": self.create_time,
            "definition_error": self.definition_error,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> RegisteredModel:
        """The model a stored document describes; `KeyError`/`TypeError` for one that is not such a document."""
        config = doc.get("config") or {}
        if not isinstance(config, Mapping):
            raise TypeError(f"the config of trained model [{doc['model_id']}] is not an object")
        return cls(
            model_id=str(doc["model_id"]),
            config=dict(config),
            source=doc.get("source"),
            sha256=doc.get("sha256"),
            cache_key=doc.get("cache_key"),
            fully_defined=bool(doc.get("fully_defined", False)),
            create_time=int(doc.get("create_time") or 0),
            definition_error=doc.get("definition_error"),
        )


class ModelRegistry:
    """The registered models, read and written through the store on every call (no copy to go stale:
    the CLI and a running server may share one data directory)."""

    def __init__(self, repository: Repository) -> None:
        self._repo = repository

    def get(self, model_id: str) -> RegisteredModel | None:
        doc = self._repo.get(KIND, model_id)
        return None if doc is None else RegisteredModel.from_doc(doc)

    def list(self) -> list[RegisteredModel]:
        """Every registered model, by id."""
        return sorted((RegisteredModel.from_doc(doc) for _, doc in self._repo.list(KIND)), key=lambda m: m.model_id)

    def add(self, model: RegisteredModel) -> bool:
        """Register a new model; False (and nothing written) if the id is taken."""
        return self._repo.create(KIND, model.model_id, model.to_doc())

    def put(self, model: RegisteredModel) -> None:
        """Register or replace."""
        self._repo.put(KIND, model.model_id, model.to_doc())

    def remove(self, model_id: str) -> bool:
        """Forget a model; False if it was not registered. Its cached files are the cache's to remove."""
        return self._repo.delete(KIND, model_id)


__all__ = ["KIND", "ModelRegistry", "RegisteredModel"]
