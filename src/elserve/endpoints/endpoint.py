"""An inference endpoint of the `elasticsearch` service: the value, its echo and its stored form.

Echo: `SRV/inference/ModelConfigurations.java` (`inference_id`, `task_type`,
`service`, `service_settings`, `task_settings` only when non-empty (never for
ELSER), `chunking_settings` when the task type has them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from elserve.chunking.settings import ChunkingSettings, chunking_settings_from_persisted
from elserve.endpoints.service_settings import ServiceSettings
from elserve.endpoints.task_types import TaskType

SERVICE_NAME = "elasticsearch"
# Task types whose endpoints carry chunking settings.
CHUNKED_TASK_TYPES = frozenset({TaskType.SPARSE_EMBEDDING, TaskType.TEXT_EMBEDDING})


@dataclass(frozen=True)
class Endpoint:
    inference_id: str
    task_type: TaskType
    service_settings: ServiceSettings
    chunking_settings: ChunkingSettings | None
    # Always "elasticsearch": the `elser` alias is stored and echoed under the real name.
    service: str = SERVICE_NAME

    @property
    def deployment_id(self) -> str:
        """The ML deployment serving this endpoint: the attached one, else one named after the endpoint."""
        return self.service_settings.deployment_id or self.inference_id

    @property
    def owns_deployment(self) -> bool:
        """True when the endpoint started its deployment (and so stops it on delete)."""
        return self.service_settings.deployment_id is None

    @property
    def model_id(self) -> str:
        return self.service_settings.model_id

    def to_dict(self, live_allocations: int | None = None) -> dict[str, Any]:
        """Elasticsearch's JSON. GET passes the deployment's live allocation count."""
        body: dict[str, Any] = {
            "inference_id": self.inference_id,
            "task_type": self.task_type.value,
            "service": self.service,
            "service_settings": self.service_settings.to_dict(live_allocations),
        }
        if self.chunking_settings is not None:
            body["chunking_settings"] = self.chunking_settings.to_dict()
        return body

    def to_persisted(self) -> dict[str, Any]:
        """What the store keeps (Elasticsearch's index form: task settings always written)."""
        body: dict[str, Any] = {
            "inference_id": self.inference_id,
            "task_type": self.task_type.value,
            "service": self.service,
            "service_settings": self.service_settings.to_dict(),
            "task_settings": {},
        }
        if self.chunking_settings is not None:
            body["chunking_settings"] = self.chunking_settings.to_dict()
        return body

    @classmethod
    def from_persisted(cls, stored: Mapping[str, Any]) -> Endpoint:
        """The inverse of `to_persisted`, lenient: stored data is trusted.

        An embedding endpoint stored without chunking settings (pre-8.16) gets word/250/100.
        """
        task_type = TaskType(stored["task_type"])
        chunking = None
        if task_type in CHUNKED_TASK_TYPES:
            chunking = chunking_settings_from_persisted(stored.get("chunking_settings"))
        service = stored.get("service", SERVICE_NAME)
        return cls(
            inference_id=stored.get("inference_id", stored.get("model_id")),
            task_type=task_type,
            service_settings=ServiceSettings.from_persisted(stored["service_settings"]),
            chunking_settings=chunking,
            service=SERVICE_NAME if service == "elser" else service,
        )

    def with_service_settings(self, settings: ServiceSettings) -> Endpoint:
        return replace(self, service_settings=settings)
