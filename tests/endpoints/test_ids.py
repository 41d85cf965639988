"""Inference ids on PUT/_update (T1, reserved, taken) and the lookup rules of GET/DELETE/POST."""

from __future__ import annotations

import pytest

from elserve.endpoints.ids import (
    RESERVED_INFERENCE_IDS,
    check_not_reserved,
    check_not_taken_by_model,
    validate_inference_id,
)
from elserve.endpoints.lookup import (
    check_infer_task_type_matches,
    check_task_type_matches,
    endpoint_already_exists,
    endpoint_not_found,
    is_all_or_wildcard,
)
from elserve.endpoints.task_types import TaskType
from tests.support.errors import expect_error, raising


@pytest.mark.parametrize("inference_id", ["a", "my-elser", "elser_1", "a.b", "0", "x" * 64])
def test_valid_ids(inference_id: str) -> None:
    validate_inference_id(inference_id)


def test_ids_over_64_characters_are_refused() -> None:
    """The endpoint's deployment takes its id, and ML ids are at most 64 characters (`MlStrings`)."""
    long_id = "x" * 65
    expect_error(
        lambda: validate_inference_id(long_id),
        "action_request_validation_exception",
        400,
        f"Validation Failed: 1: Invalid inference_id; '{long_id}' cannot contain more than 64 characters.;",
    )


@pytest.mark.parametrize(
    "inference_id",
    ["_all", "My-elser", "-a", "a-", "a_", ".elser-2-elasticsearch", "a b", "", "é", "a/b"],
)
def test_invalid_ids(inference_id: str) -> None:
    expect_error(
        lambda: validate_inference_id(inference_id),
        "action_request_validation_exception",
        400,
        f"Validation Failed: 1: Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric "
        "(a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;",
    )


@pytest.mark.parametrize("inference_id", sorted(RESERVED_INFERENCE_IDS))
def test_reserved_ids(inference_id: str) -> None:
    expect_error(
        lambda: check_not_reserved(inference_id),
        "status_exception",
        400,
        f"[{inference_id}] is a reserved inference ID. Cannot create a new inference endpoint with a reserved ID.",
    )


def test_reserved_ids_are_the_three_defaults() -> None:
    assert {
        ".elser-2-elasticsearch",
        ".multilingual-e5-small-elasticsearch",
        ".rerank-v1-elasticsearch",
    } == RESERVED_INFERENCE_IDS


def test_id_taken_by_a_trained_model() -> None:
    check_not_taken_by_model("free", {"taken"})
    expect_error(
        lambda: check_not_taken_by_model("taken", {"taken"}),
        "status_exception",
        400,
        "Inference endpoint IDs must be unique. "
        "Requested inference endpoint ID [taken] matches existing trained model ID(s) but must not.",
    )


@pytest.mark.parametrize(
    ("inference_id", "listed"), [("_all", True), ("*", True), ("", True), ("x*", False), ("x", False)]
)
def test_get_wildcards(inference_id: str, listed: bool) -> None:
    assert is_all_or_wildcard(inference_id) is listed


def test_lookup_errors() -> None:
    expect_error(
        raising(endpoint_not_found("x")),
        "resource_not_found_exception",
        404,
        "Inference endpoint not found [x]",
    )
    expect_error(
        raising(endpoint_already_exists("x")),
        "resource_already_exists_exception",
        400,
        "Inference endpoint [x] already exists",
    )


def test_get_delete_task_type_mismatch() -> None:
    check_task_type_matches(TaskType.ANY, TaskType.SPARSE_EMBEDDING)
    check_task_type_matches(TaskType.SPARSE_EMBEDDING, TaskType.SPARSE_EMBEDDING)
    expect_error(
        lambda: check_task_type_matches(TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING),
        "status_exception",
        400,
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]",
    )


def test_infer_task_type_mismatch() -> None:
    check_infer_task_type_matches(TaskType.ANY, TaskType.SPARSE_EMBEDDING)
    expect_error(
        lambda: check_infer_task_type_matches(TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING),
        "status_exception",
        400,
        "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]",
    )
