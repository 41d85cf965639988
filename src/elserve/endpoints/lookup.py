"""Rules for the paths that read, delete or use an existing endpoint (GET, DELETE, POST).

These paths check no id syntax (`GetInferenceModelAction.Request` and
`DeleteInferenceEndpointAction.Request` have no id validation); only the path
task type must parse (`task_types.parse_path_task_type`). Sources:
`INF/action/TransportGetInferenceModelAction.java`, `INF/common/InferenceExceptions.java`,
`INF/registry/ModelRegistry.java`, `INF/action/BaseTransportInferenceAction.java`.
"""

from __future__ import annotations

from elserve.endpoints.task_types import TaskType
from elserve.errors import ResourceAlreadyExistsException, ResourceNotFoundException, StatusException


def is_all_or_wildcard(inference_id: str | None) -> bool:
    """`Strings.isAllOrWildcard`: empty, `_all` or `*` lists endpoints (GET only)."""
    return not inference_id or inference_id in ("_all", "*")


def endpoint_not_found(inference_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Inference endpoint not found [{inference_id}]")


def endpoint_already_exists(inference_id: str) -> ResourceAlreadyExistsException:
    return ResourceAlreadyExistsException(f"Inference endpoint [{inference_id}] already exists")


def check_task_type_matches(requested: TaskType, actual: TaskType) -> None:
    """GET and DELETE: a path task type other than the endpoint's is a 400."""
    if not requested.is_any_or_same(actual):
        raise StatusException(
            f"Requested task type [{requested}] does not match the inference endpoint's task type [{actual}]", 400
        )


def check_infer_task_type_matches(requested: TaskType, actual: TaskType) -> None:
    """POST inference: the same rule with the inference action's own message."""
    if not requested.is_any_or_same(actual):
        raise StatusException(
            f"Incompatible task_type, the requested type [{requested}] does not match the model type [{actual}]", 400
        )
