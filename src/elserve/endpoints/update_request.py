"""`PUT /_inference/[{task_type}/]{inference_id}/_update`.

Two steps, because Elasticsearch reads the body before it looks the endpoint up:
`parse_update_body` (id, body shape, task type: T1, T2 and §4 messages) raises
before any 404, then `apply_update` merges into the stored endpoint.
`parse_update_request` does both when the endpoint is known to exist.

Sources: `CORE/inference/action/UpdateInferenceModelAction.java` (body rules),
`INF/action/TransportUpdateInferenceModelAction.java` (order, merge, 409s),
`ESS/ElasticsearchInternalServiceSettings.java` (what may change).

Only `num_allocations` and `adaptive_allocations` change; giving one replaces
both (the one not given is cleared), as in Elasticsearch's newest code, so an
endpoint can move between fixed and adaptive allocations. `chunking_settings`
replaces the old ones whole. An update that changes nothing returns an endpoint
equal (`==`) to the existing one: nothing to do but answer it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from elserve.chunking.settings import ChunkingSettings, parse_chunking_settings
from elserve.endpoints.adaptive import AdaptiveAllocations, remove_adaptive_allocations
from elserve.endpoints.elasticsearch_service import check_elser_chunk_size
from elserve.endpoints.endpoint import SERVICE_NAME, Endpoint
from elserve.endpoints.ids import validate_inference_id
from elserve.endpoints.preconfigured import check_updatable
from elserve.endpoints.put_request import resolve_task_type
from elserve.endpoints.service_settings import SCOPE, check_deployment_update
from elserve.endpoints.task_types import TaskType, parse_path_task_type, parse_task_type
from elserve.errors import ParseException, StatusException, ValidationErrors, ValidationException
from elserve.java_text import java_map_text, parsed_capacity
from elserve.models.catalogue import is_elser_model
from elserve.settings_map import (
    extract_optional_positive_integer,
    missing_one_of_message,
    unknown_settings_error,
)

_SECTIONS = ("service_settings", "task_settings", "chunking_settings")


@dataclass(frozen=True)
class UpdateRequest:
    inference_id: str
    task_type: TaskType
    service_settings: dict[str, Any] | None
    task_settings: dict[str, Any] | None
    chunking_settings: dict[str, Any] | None


def parse_update_body(inference_id: str, path_task_type: str | None, body: Mapping[str, Any] | None) -> UpdateRequest:
    """The checks that come before the endpoint is looked up."""
    url_task_type = parse_path_task_type(path_task_type)
    validate_inference_id(inference_id)
    if body is None:
        raise ParseException("request body is required")
    if not isinstance(body, Mapping) or not body:
        # A body that is not an object also reads as an empty map.
        raise StatusException("Request body is empty", 400)
    unvalidated = dict(body)
    capacity = parsed_capacity(len(unvalidated))

    def printed() -> str:
        return java_map_text(unvalidated, capacity)

    body_task_type = None
    if "task_type" in unvalidated:
        raw = unvalidated["task_type"]
        if not isinstance(raw, str):
            raise StatusException(f"Failed to parse [task_type] in update request [{printed()}]", 400)
        body_task_type = parse_task_type(raw)
        del unvalidated["task_type"]
    sections: dict[str, dict[str, Any] | None] = {}
    for name in _SECTIONS:
        sections[name] = None
        if name not in unvalidated:
            continue
        value = unvalidated[name]
        if not isinstance(value, Mapping):
            raise StatusException(f"Unable to parse [{name}] in the request [{printed()}]", 400)
        del unvalidated[name]
        sections[name] = dict(value) or None
    if unvalidated:
        raise StatusException(
            f"Request contained fields which cannot be updated, remove these fields and try again [{printed()}]", 400
        )
    # The body's task type is passed on normalised (TaskType.toString()).
    task_type = resolve_task_type(url_task_type, None if body_task_type is None else body_task_type.value)
    return UpdateRequest(
        inference_id, task_type, sections["service_settings"], sections["task_settings"], sections["chunking_settings"]
    )


def apply_update(existing: Endpoint, update: UpdateRequest, *, deployment_owner: str | None = None) -> Endpoint:
    """The updated endpoint, or every refusal in Elasticsearch's order.

    `deployment_owner`: for an endpoint attached to another deployment, the id of
    the endpoint that created that deployment (None: the trained models API did).
    Whether the deployment exists is the caller's check (404).
    """
    check_updatable(existing.inference_id)
    if existing.task_type is not update.task_type:
        raise StatusException("Task type must match the task type of the existing endpoint", 400)
    settings = existing.service_settings
    leftovers: dict[str, Any] = {}
    if update.service_settings is not None:
        leftovers = dict(update.service_settings)
        num_allocations, adaptive = _merge_allocations(leftovers)
        settings = settings.with_allocations(num_allocations, adaptive)
    chunking: ChunkingSettings | None = existing.chunking_settings
    if update.chunking_settings is not None:
        chunking = parse_chunking_settings(update.chunking_settings)
    if leftovers:
        assert update.service_settings is not None
        raise unknown_settings_error(leftovers, SERVICE_NAME, len(update.service_settings))
    no_allocations = settings.num_allocations is None and settings.adaptive_allocations is None
    if update.service_settings is not None and no_allocations:
        raise ValidationException([missing_one_of_message(["num_allocations", "adaptive_allocations"], SCOPE)])
    if update.task_settings:
        # ELSER's task settings are empty and take no update: every key is unknown.
        raise unknown_settings_error(update.task_settings, SERVICE_NAME, len(update.task_settings))
    if settings.deployment_id is None and is_elser_model(settings.model_id):
        check_elser_chunk_size(chunking)
    updated = replace(existing, service_settings=settings, chunking_settings=chunking)
    if updated == existing:
        return existing
    if existing.deployment_id != existing.inference_id:
        raise _not_owner(existing, deployment_owner)
    check_deployment_update(settings.num_allocations, settings.adaptive_allocations)
    return updated


def _merge_allocations(service_settings: dict[str, Any]) -> tuple[int | None, AdaptiveAllocations | None]:
    """Pops the allocation settings; the other keys stay for the unknown-settings check."""
    given_allocations = service_settings.get("num_allocations") is not None
    given_adaptive = service_settings.get("adaptive_allocations") is not None
    errors = ValidationErrors()
    num_allocations = extract_optional_positive_integer(service_settings, "num_allocations", SCOPE, errors)
    adaptive = remove_adaptive_allocations(service_settings, errors)
    if given_allocations and given_adaptive:
        errors.add("[num_allocations] cannot be set if [adaptive_allocations] is set")
    errors.raise_if_any()
    return num_allocations, adaptive


def _not_owner(endpoint: Endpoint, deployment_owner: str | None) -> StatusException:
    deployment = endpoint.deployment_id
    if deployment_owner is not None:
        return StatusException(
            f"Cannot update inference endpoint [{endpoint.inference_id}] for model deployment [{deployment}] "
            "as it was created by another inference endpoint. "
            f"The model can only be updated using inference endpoint id [{deployment_owner}].",
            409,
        )
    return StatusException(
        f"Cannot update inference endpoint [{endpoint.inference_id}] using model deployment [{deployment}]. "
        "The model deployment must be updated through the trained models API.",
        409,
    )


def parse_update_request(existing: Endpoint, path_task_type: str | None, body: Mapping[str, Any] | None) -> Endpoint:
    """Both steps, for an endpoint known to exist."""
    update = parse_update_body(existing.inference_id, path_task_type, body)
    return apply_update(existing, update)
