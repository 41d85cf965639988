"""POST inference bodies (T7): parse errors with Jackson's locations, then `validate()`."""

from __future__ import annotations

from typing import Any

import pytest

from elserve.endpoints.infer_request import body_parsed_before_lookup, parse_infer_body, parse_infer_request
from elserve.endpoints.preconfigured import default_elser_endpoint
from elserve.endpoints.task_types import TaskType
from tests.support.errors import expect_error

PARSE = "x_content_parse_exception"
REQUEST_VALIDATION = "action_request_validation_exception"
NAME = "cluster:internal/xpack/inference"
ELSER = default_elser_endpoint(".elser_model_2")


@pytest.mark.parametrize(
    ("body", "inputs"),
    [
        ({"input": "one"}, ("one",)),
        ({"input": ["a", "b"]}, ("a", "b")),
        ({"input": [""]}, ("",)),
        # Jackson's getText() turns array numbers and booleans into their JSON text.
        ({"input": ["a", 1, True, 2.5]}, ("a", "1", "true", "2.5")),
    ],
)
def test_inputs(body: dict[str, Any], inputs: tuple[str, ...]) -> None:
    assert parse_infer_body("sparse_embedding", body).input == inputs


def test_number_text_is_as_written_in_the_raw_body() -> None:
    source = b'{"input": [1e3, 1.50]}'
    assert parse_infer_body("sparse_embedding", {"input": [1000.0, 1.5]}, source=source).input == ("1e3", "1.50")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"input": None}, f"[1:10] [{NAME}] input doesn't support values of type: VALUE_NULL"),
        ({"input": 1}, f"[1:10] [{NAME}] input doesn't support values of type: VALUE_NUMBER"),
        ({"input": {}}, f"[1:10] [{NAME}] input doesn't support values of type: START_OBJECT"),
        ({"input": True}, f"[1:10] [{NAME}] input doesn't support values of type: VALUE_BOOLEAN"),
        ({"input": "x", "inputs": "y"}, f"[1:14] [{NAME}] unknown field [inputs] did you mean [input]?"),
        ({"foo": 1}, f"[1:2] [{NAME}] unknown field [foo]"),
        ({"input": "x", "top": 1}, f"[1:14] [{NAME}] unknown field [top] did you mean [top_n]?"),
        (
            {"input": "x", "task_settings": "x"},
            f"[1:30] [{NAME}] task_settings doesn't support values of type: VALUE_STRING",
        ),
        ({"input": "x", "query": 5}, f"[1:22] [{NAME}] query doesn't support values of type: VALUE_NUMBER"),
        ({"input": "x", "timeout": 5}, f"[1:24] [{NAME}] timeout doesn't support values of type: VALUE_NUMBER"),
    ],
)
def test_parse_errors(body: dict[str, Any], reason: str) -> None:
    expect_error(lambda: parse_infer_body("sparse_embedding", body), PARSE, 400, reason)


@pytest.mark.parametrize(
    ("body", "reason", "cause"),
    [
        (
            {"input": [None]},
            f"[1:11] [{NAME}] failed to parse field [input]",
            {"type": "illegal_state_exception", "reason": "Can't get text on a VALUE_NULL at 1:11"},
        ),
        (
            {"input": ["a", {}]},
            f"[1:15] [{NAME}] failed to parse field [input]",
            {"type": "illegal_state_exception", "reason": "Can't get text on a START_OBJECT at 1:15"},
        ),
        (
            {"input": [["a"]]},
            f"[1:11] [{NAME}] failed to parse field [input]",
            {"type": "illegal_state_exception", "reason": "expected value but got [START_ARRAY]"},
        ),
        (
            {"input": "x", "input_type": "bogus"},
            f"[1:27] [{NAME}] failed to parse field [input_type]",
            {
                "type": "illegal_argument_exception",
                "reason": "No enum constant org.elasticsearch.inference.InputType.BOGUS",
            },
        ),
        (
            {"input": "x", "input_type": "internal_ingest"},
            f"[1:27] [{NAME}] failed to parse field [input_type]",
            {"type": "illegal_argument_exception", "reason": "Unrecognized input_type [internal_ingest]"},
        ),
        (
            {"input": "x", "return_documents": "yes"},
            f"[1:33] [{NAME}] failed to parse field [return_documents]",
            {
                "type": "illegal_argument_exception",
                "reason": "Failed to parse value [yes] as only [true] or [false] are allowed.",
            },
        ),
        (
            {"input": "x", "top_n": "abc"},
            f"[1:22] [{NAME}] failed to parse field [top_n]",
            {"type": "number_format_exception", "reason": 'For input string: "abc"'},
        ),
        (
            {"input": "x", "timeout": "5x"},
            f"[1:24] [{NAME}] failed to parse field [timeout]",
            {
                "type": "parse_exception",
                "reason": "failed to parse setting [timeout] with value [5x] as a time value: unit is missing or "
                "unrecognized",
            },
        ),
    ],
)
def test_field_parse_failures(body: dict[str, Any], reason: str, cause: dict[str, str]) -> None:
    error = expect_error(lambda: parse_infer_body("sparse_embedding", body), PARSE, 400, reason)
    assert error.caused_by is not None and error.caused_by.to_dict() == cause


def test_locations_from_the_raw_body() -> None:
    source = b'{\n  "input": "x",\n  "foo": 1\n}'
    expect_error(
        lambda: parse_infer_body("sparse_embedding", {"input": "x", "foo": 1}, source=source),
        PARSE,
        400,
        f"[3:3] [{NAME}] unknown field [foo]",
    )


@pytest.mark.parametrize(
    ("task_type", "body", "message"),
    [
        ("sparse_embedding", {}, "Field [input] cannot be null"),
        ("sparse_embedding", {"input_type": "search"}, "Field [input] cannot be null"),
        ("sparse_embedding", {"input": []}, "Field [input] cannot be an empty array"),
        (
            "sparse_embedding",
            {"input": "x", "top_n": 3},
            "Field [top_n] cannot be specified for task type [sparse_embedding]",
        ),
        (
            "sparse_embedding",
            {"input": "x", "return_documents": False},
            "Field [return_documents] cannot be specified for task type [sparse_embedding]",
        ),
        (
            "sparse_embedding",
            {"input": "x", "query": "q"},
            "Field [query] cannot be specified for task type [sparse_embedding]",
        ),
        (
            "sparse_embedding",
            {"input": "x", "input_type": "ingest"},
            "Field [input_type] cannot be specified for task type [sparse_embedding]",
        ),
        ("rerank", {"input": "x"}, "Field [query] cannot be null for task type [rerank]"),
        ("rerank", {"input": "x", "query": ""}, "Field [query] cannot be empty for task type [rerank]"),
    ],
)
def test_validation(task_type: str, body: dict[str, Any], message: str) -> None:
    expect_error(
        lambda: parse_infer_body(task_type, body), REQUEST_VALIDATION, 400, f"Validation Failed: 1: {message};"
    )


def test_without_a_path_task_type_rerank_fields_pass() -> None:
    request = parse_infer_body(None, {"input": "x", "top_n": "2", "return_documents": "", "input_type": " Search "})
    assert request.task_type is TaskType.ANY
    assert (request.top_n, request.return_documents, request.input_type) == (2, False, "search")


def test_optional_fields() -> None:
    request = parse_infer_body(
        "sparse_embedding",
        {"input": "x", "task_settings": {"a": 1}, "input_type": "unspecified", "timeout": "10s"},
    )
    assert request.task_settings == {"a": 1}
    assert request.input_type == "unspecified"
    assert request.body_timeout == "10s"  # parsed, but the URL's timeout is what counts


def test_task_type_must_match_the_endpoint() -> None:
    assert parse_infer_request(None, ELSER, {"input": "x"}).input == ("x",)
    assert parse_infer_request("sparse_embedding", ELSER, {"input": "x"}).input == ("x",)
    expect_error(
        lambda: parse_infer_request("text_embedding", ELSER, {"input": "x"}),
        "status_exception",
        400,
        "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]",
    )


def test_body_errors_come_before_the_task_type_mismatch() -> None:
    expect_error(
        lambda: parse_infer_request("text_embedding", ELSER, {"input": []}),
        REQUEST_VALIDATION,
        400,
        "Validation Failed: 1: Field [input] cannot be an empty array;",
    )


def test_when_the_body_is_read() -> None:
    assert body_parsed_before_lookup("sparse_embedding")
    assert not body_parsed_before_lookup(None)


def test_body_must_be_an_object() -> None:
    not_an_object: Any = ["x"]
    expect_error(
        lambda: parse_infer_body("sparse_embedding", not_an_object),
        PARSE,
        400,
        f"[1:1] [{NAME}] Expected START_OBJECT but was: START_ARRAY",
    )
