"""`POST /_inference/[{task_type}/]{inference_id}`: the request body (T7).

Source: `CORE/inference/action/InferenceAction.java`: a strict `ObjectParser`
named after the action (`cluster:internal/xpack/inference`), then
`Request.validate()`; `libs/x-content/.../ObjectParser.java` and
`AbstractObjectParser.java` for the parse errors; `INF/action/TransportInferenceActionProxy.java`
for the order (with a task type in the path the body is parsed before the
endpoint is looked up; without one, after) and for `timeout` (the URL's value
always replaces the body's, which is only checked).

`input` is a string or an array; array numbers and booleans become their JSON
text, as Jackson's `getText()` gives them. Parse errors carry Jackson's
`line:column`: exact when the raw body is passed as `source`, else computed on
the compact JSON the official Python client sends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from elserve.endpoints.chunked_request import ChunkingRequest, chunking_request
from elserve.endpoints.endpoint import Endpoint
from elserve.endpoints.field_suggestions import did_you_mean
from elserve.endpoints.json_location import FieldLocation, Location, Span, compact_source, json_token, top_level_fields
from elserve.endpoints.lookup import check_infer_task_type_matches
from elserve.endpoints.task_types import TaskType, parse_path_task_type
from elserve.errors import (
    ActionRequestValidationException,
    ElasticsearchError,
    IllegalArgumentException,
    IllegalStateException,
    NumberFormatException,
    ParseException,
    XContentParseException,
    field_parse_failed,
    unsupported_value_type,
)
from elserve.java_text import java_trim

PARSER_NAME = "cluster:internal/xpack/inference"  # InferenceAction.NAME


# ObjectParser.ValueType of each declared field: the JSON tokens it accepts.
_FIELDS: dict[str, frozenset[str]] = {
    "input": frozenset({"START_ARRAY", "VALUE_STRING"}),
    "input_type": frozenset({"VALUE_STRING"}),
    "task_settings": frozenset({"START_OBJECT"}),
    "query": frozenset({"VALUE_STRING"}),
    "return_documents": frozenset({"VALUE_BOOLEAN", "VALUE_STRING"}),
    "top_n": frozenset({"VALUE_NUMBER", "VALUE_STRING"}),
    "timeout": frozenset({"VALUE_STRING"}),
    # elserve's chunked inference (elastic/elasticsearch#125160, #111856): see `chunked_request.py`.
    "chunk": frozenset({"VALUE_BOOLEAN", "VALUE_STRING"}),
    "chunking_settings": frozenset({"START_OBJECT"}),
    "return_text": frozenset({"VALUE_BOOLEAN", "VALUE_STRING"}),
}

# InputType values accepted over REST (INTERNAL_* are refused by name).
_INPUT_TYPES = ("ingest", "search", "unspecified", "classification", "clustering")
_INTERNAL_INPUT_TYPES = ("internal_search", "internal_ingest")

_TIME_VALUE = re.compile(r"(-1|0|\d+(nanos|micros|ms|s|m|h|d))")


@dataclass(frozen=True)
class InferRequest:
    task_type: TaskType  # from the path; ANY when absent
    input: tuple[str, ...]
    input_type: str = "unspecified"
    task_settings: dict[str, Any] = field(default_factory=dict)  # ignored by ELSER
    query: str | None = None
    return_documents: bool | None = None
    top_n: int | None = None
    body_timeout: str | None = None  # checked, never used: the URL's timeout wins
    chunking: ChunkingRequest | None = None  # `"chunk": true`: chunked inference


def body_parsed_before_lookup(path_task_type: str | None) -> bool:
    """With a task type in the path the body is read first; otherwise the endpoint is looked up first."""
    return path_task_type is not None


def parse_infer_body(
    path_task_type: str | None, body: Mapping[str, Any], *, source: bytes | str | None = None
) -> InferRequest:
    """The body's parse errors (x_content_parse_exception) then `validate()` (action_request_validation)."""
    task_type = parse_path_task_type(path_task_type)
    if not isinstance(body, Mapping):
        raise XContentParseException(f"[1:1] [{PARSER_NAME}] Expected START_OBJECT but was: {json_token(body)}")
    locations = top_level_fields(compact_source(body) if source is None else source)
    values: dict[str, Any] = {}
    for name, value in body.items():
        where = locations.get(name) or _unknown_location()
        if name not in _FIELDS:
            raise XContentParseException(
                f"[{where.name}] [{PARSER_NAME}] unknown field [{name}]{did_you_mean(name, _FIELDS)}"
            )
        token = json_token(value)
        if token not in _FIELDS[name]:
            raise unsupported_value_type(PARSER_NAME, name, token, str(where.value.location))
        try:
            values[name] = _READERS[name](value, where)
        except _FieldFailure as failure:
            raise field_parse_failed(PARSER_NAME, name, str(failure.location), caused_by=failure.cause) from None
    _validate(task_type, values)
    chunking = chunking_request(values)
    return InferRequest(
        task_type=task_type,
        input=tuple(values["input"]),
        input_type=values.get("input_type", "unspecified"),
        task_settings=values.get("task_settings", {}),
        query=values.get("query"),
        return_documents=values.get("return_documents"),
        top_n=values.get("top_n"),
        body_timeout=values.get("timeout"),
        chunking=chunking,
    )


def parse_infer_request(
    path_task_type: str | None, endpoint: Endpoint, body: Mapping[str, Any], *, source: bytes | str | None = None
) -> InferRequest:
    """The body's rules, then the path task type against the endpoint's (`Incompatible task_type`)."""
    request = parse_infer_body(path_task_type, body, source=source)
    check_infer_task_type_matches(request.task_type, endpoint.task_type)
    return request


def _validate(task: TaskType, values: Mapping[str, Any]) -> None:
    """`InferenceAction.Request.validate()`: the first failing rule, alone."""
    query = values.get("query")
    if values.get("input") is None:
        raise ActionRequestValidationException(["Field [input] cannot be null"])
    if not values["input"]:
        raise ActionRequestValidationException(["Field [input] cannot be an empty array"])
    if task is TaskType.RERANK:
        if query is None:
            raise ActionRequestValidationException([f"Field [query] cannot be null for task type [{task}]"])
        if query == "":
            raise ActionRequestValidationException([f"Field [query] cannot be empty for task type [{task}]"])
    elif task is not TaskType.ANY:
        if values.get("return_documents") is not None:
            raise ActionRequestValidationException(
                [f"Field [return_documents] cannot be specified for task type [{task}]"]
            )
        if values.get("top_n") is not None:
            raise ActionRequestValidationException([f"Field [top_n] cannot be specified for task type [{task}]"])
    if task in (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING) and query is not None:
        raise ActionRequestValidationException([f"Field [query] cannot be specified for task type [{task}]"])
    input_type = values.get("input_type", "unspecified")
    unspecified = input_type in ("unspecified", *_INTERNAL_INPUT_TYPES)
    if task not in (TaskType.TEXT_EMBEDDING, TaskType.ANY) and not unspecified:
        raise ActionRequestValidationException([f"Field [input_type] cannot be specified for task type [{task}]"])


class _FieldFailure(Exception):
    def __init__(self, location: Location, cause: ElasticsearchError) -> None:
        super().__init__(cause.reason)
        self.location = location
        self.cause = cause


def _unknown_location() -> FieldLocation:
    unknown = Location(1, 1)
    return FieldLocation(unknown, Span(unknown, ""))


def _read_input(value: Any, where: FieldLocation) -> list[str]:
    if isinstance(value, str):
        return [value]
    texts = []
    for index, item in enumerate(value):
        span = where.items[index] if index < len(where.items) else Span(where.value.location, "")
        if isinstance(item, list):
            raise _FieldFailure(span.location, IllegalStateException("expected value but got [START_ARRAY]"))
        if item is None or isinstance(item, Mapping):
            token = json_token(item)
            raise _FieldFailure(span.location, IllegalStateException(f"Can't get text on a {token} at {span.location}"))
        if isinstance(item, str):
            texts.append(item)
        else:
            # Jackson's getText() of a number or boolean: the JSON text as written.
            texts.append(span.text or _json_scalar_text(item))
    return texts


def _json_scalar_text(item: Any) -> str:
    if item is True:
        return "true"
    if item is False:
        return "false"
    return repr(item) if isinstance(item, float) else str(item)


def _read_input_type(value: str, where: FieldLocation) -> str:
    # InputType.fromRestString: valueOf(name.trim().toUpperCase(Locale.ROOT)), internal values refused.
    constant = java_trim(value).upper()
    name = constant.lower()
    if name in _INTERNAL_INPUT_TYPES:
        raise _FieldFailure(where.value.location, IllegalArgumentException(f"Unrecognized input_type [{name}]"))
    if name not in _INPUT_TYPES:
        raise _FieldFailure(
            where.value.location,
            IllegalArgumentException(f"No enum constant org.elasticsearch.inference.InputType.{constant}"),
        )
    return name


def _read_return_documents(value: bool | str, where: FieldLocation) -> bool:
    if isinstance(value, bool):
        return value
    # Booleans.parseBoolean(text, default): blank text is the (irrelevant) default, false.
    if value.strip() == "" or value == "false":
        return False
    if value == "true":
        return True
    raise _FieldFailure(
        where.value.location,
        IllegalArgumentException(f"Failed to parse value [{value}] as only [true] or [false] are allowed."),
    )


def _read_top_n(value: int | float | str, where: FieldLocation) -> int:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _FieldFailure(where.value.location, NumberFormatException(f'For input string: "{value}"')) from None
        if math.isnan(number):
            return 0
        if number < -(2**31) or number > 2**31 - 1:
            raise _FieldFailure(
                where.value.location, IllegalArgumentException(f"Value [{value}] is out of range for an integer")
            )
        return int(number)
    if isinstance(value, float):
        if not -(2**31) <= value <= 2**31 - 1:
            raise _FieldFailure(
                where.value.location,
                IllegalArgumentException(
                    f"Numeric value ({where.value.text or value!r}) out of range of int (-2147483648 - 2147483647)"
                ),
            )
        return int(value)  # Jackson truncates the fraction
    if not -(2**31) <= value <= 2**31 - 1:
        raise _FieldFailure(
            where.value.location,
            IllegalArgumentException(f"Numeric value ({value}) out of range of int (-2147483648 - 2147483647)"),
        )
    return value


def _read_timeout(value: str, where: FieldLocation) -> str:
    if _TIME_VALUE.fullmatch(java_trim(value).lower()) is None:
        raise _FieldFailure(
            where.value.location,
            ParseException(
                f"failed to parse setting [timeout] with value [{value}] as a time value: "
                "unit is missing or unrecognized"
            ),
        )
    return value


_READERS = {
    "input": _read_input,
    "input_type": _read_input_type,
    "task_settings": lambda value, where: dict(value),
    "query": lambda value, where: value,
    "return_documents": _read_return_documents,
    "top_n": _read_top_n,
    "timeout": _read_timeout,
    "chunk": _read_return_documents,
    "chunking_settings": lambda value, where: dict(value),
    "return_text": _read_return_documents,
}
