"""`_update`: the body rules (before the lookup), the merge and its refusals."""

from __future__ import annotations

from typing import Any

import pytest

from elserve.chunking.settings import SentenceChunkingSettings
from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.endpoints.endpoint import Endpoint
from elserve.endpoints.preconfigured import default_elser_endpoint
from elserve.endpoints.service_settings import ServiceSettings
from elserve.endpoints.task_types import TaskType
from elserve.endpoints.update_request import apply_update, parse_update_body, parse_update_request
from tests.support.errors import expect_error

STATUS = "status_exception"
VALIDATION = "validation_exception"

FIXED = Endpoint(
    "my-elser",
    TaskType.SPARSE_EMBEDDING,
    ServiceSettings(num_threads=1, model_id=".elser_model_2", num_allocations=1),
    SentenceChunkingSettings(250, 1),
)
ADAPTIVE = Endpoint(
    "my-elser",
    TaskType.SPARSE_EMBEDDING,
    ServiceSettings(num_threads=1, model_id=".elser_model_2", adaptive_allocations=AdaptiveAllocations(True, 0, 4)),
    SentenceChunkingSettings(250, 1),
)
ATTACHED = Endpoint(
    "my-elser",
    TaskType.SPARSE_EMBEDDING,
    ServiceSettings(num_threads=1, model_id=".elser_model_2", num_allocations=1, deployment_id="shared"),
    SentenceChunkingSettings(250, 1),
)


def failed(*messages: str) -> str:
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, 1))


def update(
    existing: Endpoint, body: dict[str, Any] | None, task_type: str | None = "sparse_embedding", **kw: Any
) -> Endpoint:
    return apply_update(existing, parse_update_body(existing.inference_id, task_type, body), **kw)


# --- the body, before the endpoint is looked up -----------------------------------------------


@pytest.mark.parametrize(
    ("body", "error_type", "status", "reason"),
    [
        (None, "parse_exception", 400, "request body is required"),
        ({}, STATUS, 400, "Request body is empty"),
        ({"task_type": 42}, STATUS, 400, "Failed to parse [task_type] in update request [{task_type=42}]"),
        (
            {"task_type": None, "x": 1},
            STATUS,
            400,
            "Failed to parse [task_type] in update request [{x=1, task_type=null}]",
        ),
        ({"task_type": "bad"}, STATUS, 400, "Unknown task_type [bad]"),
        (
            {"service_settings": "not_a_map"},
            STATUS,
            400,
            "Unable to parse [service_settings] in the request [{service_settings=not_a_map}]",
        ),
        (
            {"task_type": "sparse_embedding", "chunking_settings": 5},
            STATUS,
            400,
            "Unable to parse [chunking_settings] in the request [{chunking_settings=5}]",
        ),
        (
            {"task_type": "sparse_embedding", "unrecognized_top_level_field": "value"},
            STATUS,
            400,
            "Request contained fields which cannot be updated, remove these fields and try again "
            "[{unrecognized_top_level_field=value}]",
        ),
        (
            {"service": "elser", "service_settings": {"num_allocations": 2}},
            STATUS,
            400,
            "Request contained fields which cannot be updated, remove these fields and try again [{service=elser}]",
        ),
    ],
)
def test_body_rules(body: dict[str, Any] | None, error_type: str, status: int, reason: str) -> None:
    expect_error(lambda: parse_update_body("my-elser", "sparse_embedding", body), error_type, status, reason)


def test_body_rules_come_after_the_id() -> None:
    expect_error(
        lambda: parse_update_body("Bad", "sparse_embedding", {}),
        "action_request_validation_exception",
        400,
        "Validation Failed: 1: Invalid inference_id; 'Bad' can contain lowercase alphanumeric (a-z and 0-9), "
        "hyphens or underscores; must start and end with alphanumeric;",
    )


@pytest.mark.parametrize(
    ("path_task_type", "body", "reason"),
    [
        # Elasticsearch resolves the task type before the lookup: without one anywhere it refuses.
        (None, {"service_settings": {"num_allocations": 2}}, "model is missing required setting [task_type]"),
        (None, {"task_type": "any"}, "task_type [any] is not valid type for inference"),
        (
            "text_embedding",
            {"task_type": " SPARSE_EMBEDDING"},
            "Cannot resolve conflicting task_type parameter in the request URL [text_embedding] "
            "and the request body [sparse_embedding]",
        ),
    ],
)
def test_task_type_resolution(path_task_type: str | None, body: dict[str, Any], reason: str) -> None:
    expect_error(lambda: parse_update_body("my-elser", path_task_type, body), STATUS, 400, reason)


def test_task_type_from_the_body() -> None:
    body = {"task_type": "sparse_embedding", "service_settings": {"num_allocations": 3}}
    request = parse_update_body("my-elser", None, body)
    assert request.task_type is TaskType.SPARSE_EMBEDDING and request.service_settings == {"num_allocations": 3}


# --- the merge ----------------------------------------------------------------------------------


def test_num_allocations_changes() -> None:
    updated = update(FIXED, {"service_settings": {"num_allocations": 3}})
    assert updated.to_dict()["service_settings"] == {
        "num_allocations": 3,
        "num_threads": 1,
        "model_id": ".elser_model_2",
    }


def test_fixed_to_adaptive_and_back() -> None:
    new_adaptive = {"enabled": True, "max_number_of_allocations": 8}
    adaptive = update(FIXED, {"service_settings": {"adaptive_allocations": new_adaptive}})
    assert adaptive.service_settings.num_allocations is None
    assert adaptive.to_dict()["service_settings"]["adaptive_allocations"] == new_adaptive
    fixed = update(adaptive, {"service_settings": {"num_allocations": 2}})
    assert fixed.service_settings.adaptive_allocations is None and fixed.service_settings.num_allocations == 2


def test_chunking_settings_are_replaced_whole() -> None:
    updated = update(FIXED, {"chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 10}})
    assert updated.to_dict()["chunking_settings"] == {"strategy": "word", "max_chunk_size": 100, "overlap": 10}
    assert updated.service_settings == FIXED.service_settings


def test_an_update_without_chunking_settings_keeps_them() -> None:
    # Unlike elastic/elasticsearch#139574, where such an update reset them to the default.
    custom = update(
        FIXED, {"chunking_settings": {"strategy": "recursive", "max_chunk_size": 40, "separator_group": "markdown"}}
    )
    moved = update(custom, {"service_settings": {"num_allocations": 3}})
    assert moved.chunking_settings == custom.chunking_settings
    assert moved.to_dict()["chunking_settings"]["separators"][0] == "\n# "  # the group, expanded
    assert update(custom, {"chunking_settings": {"strategy": "none"}}).to_dict()["chunking_settings"] == {
        "strategy": "none"
    }


def test_no_change_returns_the_existing_endpoint() -> None:
    assert update(FIXED, {"service_settings": {"num_allocations": 1}}) == FIXED
    assert update(FIXED, {"service_settings": {}}) == FIXED
    # Even an endpoint on someone else's deployment answers an empty change.
    assert update(ATTACHED, {"task_type": "sparse_embedding"}) == ATTACHED


def test_the_response_echo() -> None:
    body = {"task_type": "sparse_embedding", "service_settings": {"num_allocations": 2}}
    updated = parse_update_request(FIXED, None, body)
    assert list(updated.to_dict()) == ["inference_id", "task_type", "service", "service_settings", "chunking_settings"]


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_settings", "error_type", "reason"),
    [
        (
            {"num_threads": 2},
            STATUS,
            "Model configuration contains settings [{num_threads=2}] unknown to the [elasticsearch] service",
        ),
        (
            {"num_allocations": 2, "model_id": "x"},
            STATUS,
            "Model configuration contains settings [{model_id=x}] unknown to the [elasticsearch] service",
        ),
        (
            {"num_allocations": 0},
            VALIDATION,
            failed("[service_settings] Invalid value [0]. [num_allocations] must be a positive integer"),
        ),
        (
            {"num_allocations": "2"},
            VALIDATION,
            failed(
                "field [num_allocations] is not of the expected type. The value [2] cannot be converted to a [Integer]"
            ),
        ),
        (
            {"adaptive_allocations": {"enabled": True, "min_number_of_allocations": 5, "max_number_of_allocations": 1}},
            VALIDATION,
            failed("[min_number_of_allocations] must not be larger than [max_number_of_allocations]"),
        ),
        (
            {"num_allocations": 2, "adaptive_allocations": {"enabled": True}},
            VALIDATION,
            failed("[num_allocations] cannot be set if [adaptive_allocations] is set"),
        ),
        (
            {"num_allocations": None},
            VALIDATION,
            failed(
                "[service_settings] does not contain one of the required settings [num_allocations, "
                "adaptive_allocations]"
            ),
        ),
    ],
)
def test_service_settings_refusals(service_settings: dict[str, Any], error_type: str, reason: str) -> None:
    expect_error(lambda: update(FIXED, {"service_settings": service_settings}), error_type, 400, reason)


def test_task_settings_take_no_update() -> None:
    expect_error(
        lambda: update(FIXED, {"task_settings": {"k": "v"}}),
        STATUS,
        400,
        "Model configuration contains settings [{k=v}] unknown to the [elasticsearch] service",
    )
    assert update(FIXED, {"task_settings": {}}) == FIXED


def test_chunking_rules_apply() -> None:
    expect_error(
        lambda: update(FIXED, {"chunking_settings": {"strategy": "sentence", "max_chunk_size": 400}}),
        "illegal_argument_exception",
        400,
        "ELSER based models do not support chunk sizes larger than 300. Requested chunk size: 400",
    )
    expect_error(
        lambda: update(FIXED, {"chunking_settings": {"max_chunk_size": 100}}),
        "illegal_argument_exception",
        400,
        "Can't generate Chunker without ChunkingStrategy provided",
    )


def test_task_type_must_match_the_endpoint() -> None:
    request = parse_update_body("my-elser", "text_embedding", {"service_settings": {"num_allocations": 2}})
    expect_error(
        lambda: apply_update(FIXED, request), STATUS, 400, "Task type must match the task type of the existing endpoint"
    )


def test_default_endpoint_cannot_be_updated() -> None:
    default = default_elser_endpoint(".elser_model_2")
    request = parse_update_body("my-elser", "sparse_embedding", {"service_settings": {"num_allocations": 2}})
    expect_error(
        lambda: apply_update(default, request),
        STATUS,
        400,
        "Default endpoint [.elser-2-elasticsearch] cannot be updated",
    )
    # Through the whole request the id rule refuses it first, as in Elasticsearch.
    expect_error(
        lambda: parse_update_request(default, "sparse_embedding", {"service_settings": {"num_allocations": 2}}),
        "action_request_validation_exception",
        400,
        "Validation Failed: 1: Invalid inference_id; '.elser-2-elasticsearch' can contain lowercase alphanumeric "
        "(a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;",
    )


def test_attached_deployments_are_updated_elsewhere() -> None:
    body = {"service_settings": {"num_allocations": 2}}
    expect_error(
        lambda: update(ATTACHED, body),
        STATUS,
        409,
        "Cannot update inference endpoint [my-elser] using model deployment [shared]. "
        "The model deployment must be updated through the trained models API.",
    )
    expect_error(
        lambda: update(ATTACHED, body, deployment_owner="shared"),
        STATUS,
        409,
        "Cannot update inference endpoint [my-elser] for model deployment [shared] as it was created by another "
        "inference endpoint. The model can only be updated using inference endpoint id [shared].",
    )


def test_a_body_that_is_not_an_object_is_empty() -> None:
    not_an_object: Any = ["x"]
    expect_error(
        lambda: parse_update_body("my-elser", "sparse_embedding", not_an_object), STATUS, 400, "Request body is empty"
    )
