"""`GET /_inference/_services[/{task_type}]`: the `elasticsearch` service's configuration schema.

Source: `ESS/ElasticsearchInternalService.java` (`Configuration`: the settings a form asks for,
with Elasticsearch's descriptions, labels and defaults), `server/.../inference/SettingsConfiguration.java`
and `InferenceServiceConfiguration.java` (`toXContent`: field order, `default_value` only when
set), `INF/action/TransportGetInferenceServicesAction.java` (services sorted by name, a task
type keeps the services that support it). Kibana builds its endpoint forms from this.

Two choices, both Elasticsearch's own behaviour for what elserve is:
- `elser` is not listed: Elasticsearch 9 registers no `elser` service, the name is an alias the
  registry resolves to `elasticsearch` (`InferenceServiceRegistry.getService`), and the services
  API lists registered services only (`InferenceGetServicesIT`).
- The task types are the ones elserve serves (`SERVED_TASK_TYPES`): a form offering
  `text_embedding` would only lead to the PUT's unsupported-task error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elserve.endpoints.endpoint import SERVICE_NAME
from elserve.endpoints.task_types import SERVED_TASK_TYPES, TaskType
from elserve.java_text import hash_map_order

# The label Elasticsearch gives the service (`ElasticsearchInternalService.SERVICE_NAME`).
SERVICE_LABEL = "Elasticsearch"

# The values a form starts from (`setDefaultValue`): one allocation of two threads.
DEFAULT_NUM_ALLOCATIONS = 1
DEFAULT_NUM_THREADS = 2

# `HashMap`'s initial capacity: the configurations map is built by `put`s into `new HashMap<>()`.
_HASH_MAP_CAPACITY = 16


@dataclass(frozen=True)
class SettingConfiguration:
    """One setting of the schema (`SettingsConfiguration`); `type` is `SettingsConfigurationFieldType`'s text."""

    description: str
    label: str
    required: bool
    sensitive: bool
    updatable: bool
    type: str
    default_value: Any = None

    def to_dict(self, task_types: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.default_value is not None:
            body["default_value"] = self.default_value
        body.update(
            description=self.description,
            label=self.label,
            required=self.required,
            sensitive=self.sensitive,
            updatable=self.updatable,
            type=self.type,
            supported_task_types=task_types,
        )
        return body


_SETTINGS: dict[str, SettingConfiguration] = {
    "model_id": SettingConfiguration(
        description="The name of the model to use for the inference task.",
        label="Model ID",
        required=True,
        sensitive=False,
        updatable=False,
        type="str",
    ),
    "num_allocations": SettingConfiguration(
        description="The total number of allocations this model is assigned across machine learning nodes.",
        label="Number Allocations",
        required=True,
        sensitive=False,
        updatable=True,
        type="int",
        default_value=DEFAULT_NUM_ALLOCATIONS,
    ),
    "num_threads": SettingConfiguration(
        description="Sets the number of threads used by each model allocation during inference.",
        label="Number Threads",
        required=True,
        sensitive=False,
        updatable=False,
        type="int",
        default_value=DEFAULT_NUM_THREADS,
    ),
}


def _task_types() -> list[str]:
    """The served task types in `TaskType`'s declaration order (an `EnumSet` prints in that order)."""
    return [str(t) for t in TaskType if t in SERVED_TASK_TYPES]


def service_configurations(task_type: TaskType) -> list[dict[str, Any]]:
    """The services' configurations; with a task type, those of the services that support it (ANY: all)."""
    task_types = _task_types()
    if task_type is not TaskType.ANY and str(task_type) not in task_types:
        return []
    configurations = {
        name: _SETTINGS[name].to_dict(task_types) for name in hash_map_order(list(_SETTINGS), _HASH_MAP_CAPACITY)
    }
    return [
        {"service": SERVICE_NAME, "name": SERVICE_LABEL, "task_types": task_types, "configurations": configurations}
    ]
