"""The `elasticsearch` service's rules for a new endpoint, and its `elser` alias.

Source: `ESS/ElasticsearchInternalService.java` (`parseRequestConfig`,
`elserCase`, `customElandCase`), `ESS/ElserInternalModel.java` (the 300 cap),
`ESS/ElserModels.java`. Steps run in Elasticsearch's order; the first failing
step raises.

ELSER models fill in or check the model id against the platform and ignore
`task_settings`. An endpoint on an existing deployment (`deployment_id`) takes
every setting from that deployment once the caller resolves it. Other model ids
are served only when the caller knows them (`known_models`, e.g. imported ones),
and then their `task_settings` must be empty, as for Elasticsearch's Eland models.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from elserve.chunking.settings import ChunkingSettings, parse_chunking_settings
from elserve.endpoints import deprecation
from elserve.endpoints.endpoint import CHUNKED_TASK_TYPES, SERVICE_NAME, Endpoint
from elserve.endpoints.service_settings import RequestedServiceSettings, parse_service_settings
from elserve.endpoints.task_types import TaskType, check_served
from elserve.errors import IllegalArgumentException
from elserve.models.catalogue import ELSER_V2_MODEL, is_elser_model
from elserve.settings_map import (
    cast_string,
    remove_map_or_default_empty,
    remove_map_or_throw_if_null,
    unknown_settings_error,
)

ELSER_ALIAS = "elser"
SERVICE_NAMES = frozenset({SERVICE_NAME, ELSER_ALIAS})
# ElserInternalModel.ELSER_MAX_WINDOW_SIZE: ELSER endpoints refuse bigger chunks.
ELSER_MAX_CHUNK_SIZE = 300

NULL_MODEL_ID_WARNING = (
    "Putting elasticsearch service inference endpoints (including elser service) without a model_id field is"
    " deprecated and will be removed in a future release. Please specify a model_id field."
)


def elser_service_warning(platform_default: str) -> str:
    """The deprecation warning of every `elser` PUT (names the platform default, whatever was sent)."""
    return (
        f"The [{ELSER_ALIAS}] service is deprecated and will be removed in a future release. "
        f"Use the [{SERVICE_NAME}] service instead, with [model_id] set to [{platform_default}] "
        "in the [service_settings]"
    )


@dataclass(frozen=True)
class PendingDeployment:
    """An endpoint to attach to an existing deployment; its settings come from that deployment."""

    inference_id: str
    task_type: TaskType
    deployment_id: str
    requested_model_id: str | None
    chunking_settings: ChunkingSettings | None


@dataclass(frozen=True)
class ServiceConfig:
    """What the service made of a request: an endpoint, or a deployment still to resolve."""

    endpoint: Endpoint | None
    pending: PendingDeployment | None
    warnings: tuple[str, ...] = field(default=())


def parse_request_config(
    inference_id: str,
    task_type: TaskType,
    config: dict[str, Any],
    *,
    parsed_keys: int,
    platform_default: str,
    known_models: Collection[str] = (),
) -> ServiceConfig:
    """`parseRequestConfig`: `config` is the body without `task_type` (it is consumed).

    `parsed_keys` is how many keys the body had (it decides the printed order of
    leftovers); `platform_default` is the platform's ELSER id.
    """
    check_served(task_type)
    service_map = remove_map_or_throw_if_null(config, "service_settings")
    task_settings = remove_map_or_default_empty(config, "task_settings")
    service_name = cast_string(config.pop("service", None))
    chunking = None
    if task_type in CHUNKED_TASK_TYPES:
        chunking = parse_chunking_settings(remove_map_or_default_empty(config, "chunking_settings"))
    if config:
        raise unknown_settings_error(config, SERVICE_NAME, parsed_keys)

    service_keys = len(service_map)
    model_id = cast_string(service_map.get("model_id"))
    deployment_id = cast_string(service_map.get("deployment_id"))
    if deployment_id is not None:
        # Everything else comes from the deployment; the rest of service_settings is not looked at.
        pending = PendingDeployment(inference_id, task_type, deployment_id, model_id, chunking)
        return ServiceConfig(endpoint=None, pending=pending)
    warnings: list[str] = []
    if model_id is None:
        if service_name != ELSER_ALIAS:
            raise IllegalArgumentException("Error parsing service settings, model_id must be provided")
        warnings.append(NULL_MODEL_ID_WARNING)
        deprecation.warn(NULL_MODEL_ID_WARNING)  # on the answer even if a later rule refuses the PUT
    elif not is_elser_model(model_id):
        return _custom_model_case(
            inference_id, task_type, service_map, service_keys, task_settings, chunking, model_id, known_models
        )
    requested = parse_service_settings(service_map)
    model_id = _select_elser_model(requested, platform_default)
    if service_name == ELSER_ALIAS:
        warnings.append(elser_service_warning(platform_default))
        deprecation.warn(warnings[-1])
    if service_map:
        raise unknown_settings_error(service_map, SERVICE_NAME, service_keys)
    check_elser_chunk_size(chunking)
    endpoint = Endpoint(inference_id, task_type, requested.build(model_id), chunking)
    return ServiceConfig(endpoint=endpoint, pending=None, warnings=tuple(warnings))


def _select_elser_model(requested: RequestedServiceSettings, platform_default: str) -> str:
    """`elserCase`: fill in the platform default; the platform-agnostic `.elser_model_2` is always accepted."""
    model_id = requested.model_id
    if model_id is None:
        return platform_default
    if model_id in (platform_default, ELSER_V2_MODEL):
        return model_id
    raise IllegalArgumentException(
        "Error parsing request config, model id does not match any models available on this platform. "
        f"Was [{model_id}]. You may need to use a platform agnostic model."
    )


def _custom_model_case(
    inference_id: str,
    task_type: TaskType,
    service_map: dict[str, Any],
    service_keys: int,
    task_settings: dict[str, Any],
    chunking: ChunkingSettings | None,
    model_id: str,
    known_models: Collection[str],
) -> ServiceConfig:
    """`customElandCase`: the model must exist; its task settings are not ignored."""
    if model_id not in known_models:
        raise IllegalArgumentException(
            "Error parsing request config, model id does not match any models available on this platform. "
            f"Was [{model_id}]. You may need to load it into the cluster using eland."
        )
    requested = parse_service_settings(service_map)
    if service_map:
        raise unknown_settings_error(service_map, SERVICE_NAME, service_keys)
    if task_settings:
        raise unknown_settings_error(task_settings, SERVICE_NAME, len(task_settings))
    endpoint = Endpoint(inference_id, task_type, requested.build(model_id), chunking)
    return ServiceConfig(endpoint=endpoint, pending=None)


def check_elser_chunk_size(chunking: ChunkingSettings | None) -> None:
    """`ElserInternalModel`'s constructor: ELSER endpoints refuse chunks above 300 words."""
    size = None if chunking is None else chunking.max_chunk_size
    if size is not None and size > ELSER_MAX_CHUNK_SIZE:
        raise IllegalArgumentException(
            f"ELSER based models do not support chunk sizes larger than {ELSER_MAX_CHUNK_SIZE}. "
            f"Requested chunk size: {size}"
        )
