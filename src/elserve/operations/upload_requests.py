"""The bodies of the upload routes, parsed as Elasticsearch's object parsers parse them.

`PutTrainedModelDefinitionPartAction.Request` (`put_trained_model_part_action`: `definition` a
base64 string, `total_definition_length` a long, `total_parts` an int) and
`PutTrainedModelVocabularyAction.Request` (`put_trained_model_vocabulary`: `vocabulary` and
`merges` string arrays, `scores` a double array). A missing required field is
`ExceptionsHelper.requireNonNull`'s 400 `illegal_argument_exception`; an unknown or mistyped one a
400 `x_content_parse_exception`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from elserve.errors import IllegalArgumentException, XContentParseException, field_parse_failed

_PART_PARSER = "put_trained_model_part_action"
_VOCABULARY_PARSER = "put_trained_model_vocabulary"
_JAVA_INT_MAX = 2**31 - 1
_JAVA_LONG_MAX = 2**63 - 1
# `PutTrainedModelDefinitionPartAction.MAX_NUM_NATIVE_DEFINITION_PARTS`.
MAX_PARTS = 10_000


@dataclass(frozen=True)
class DefinitionPart:
    definition: bytes
    total_definition_length: int
    total_parts: int


@dataclass(frozen=True)
class Vocabulary:
    vocabulary: list[str]
    merges: list[str] | None
    scores: list[float] | None


def _check_fields(parser: str, body: dict[str, Any], known: tuple[str, ...]) -> None:
    for name in body:
        if name not in known:
            raise XContentParseException(f"[{parser}] unknown field [{name}]")


def _integer(parser: str, body: dict[str, Any], name: str, limit: int) -> int:
    value = body.get(name, 0)
    if isinstance(value, str):  # Elasticsearch's number parsers take numeric strings too
        try:
            value = int(value)
        except ValueError:
            raise field_parse_failed(parser, name) from None
    if isinstance(value, bool) or not isinstance(value, int) or not -limit - 1 <= value <= limit:
        raise field_parse_failed(parser, name)
    return value


def parse_definition_part(body: dict[str, Any]) -> DefinitionPart:
    _check_fields(_PART_PARSER, body, ("definition", "total_definition_length", "total_parts"))
    encoded = body.get("definition")
    if encoded is None:
        raise IllegalArgumentException("[definition] must not be null.")
    if not isinstance(encoded, str):
        raise field_parse_failed(_PART_PARSER, "definition")
    try:
        definition = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise field_parse_failed(
            _PART_PARSER,
            "definition",
            caused_by=IllegalArgumentException("the definition is not valid base64"),
        ) from None
    return DefinitionPart(
        definition=definition,
        total_definition_length=_integer(_PART_PARSER, body, "total_definition_length", _JAVA_LONG_MAX),
        total_parts=_integer(_PART_PARSER, body, "total_parts", _JAVA_INT_MAX),
    )


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise field_parse_failed(_VOCABULARY_PARSER, name)
    return value


def parse_vocabulary(body: dict[str, Any]) -> Vocabulary:
    _check_fields(_VOCABULARY_PARSER, body, ("vocabulary", "merges", "scores"))
    if body.get("vocabulary") is None:
        raise IllegalArgumentException("[vocabulary] must not be null.")
    vocabulary = _strings("vocabulary", body["vocabulary"])
    merges = None if body.get("merges") is None else _strings("merges", body["merges"])
    scores = body.get("scores")
    if scores is not None:
        if not isinstance(scores, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores
        ):
            raise field_parse_failed(_VOCABULARY_PARSER, "scores")
        scores = [float(v) for v in scores]
    return Vocabulary(vocabulary, merges, scores)


def part_errors(part: int, total_definition_length: int, total_parts: int) -> list[str]:
    """`PutTrainedModelDefinitionPartAction.Request.validate`, in its order."""
    errors = []
    if part < 0:
        errors.append("[part] must be greater or equal to 0")
    if total_parts <= 0:
        errors.append("[total_parts] must be greater than 0")
    if total_parts > MAX_PARTS:
        errors.append(f"[total_parts] must be less than or equal to {MAX_PARTS}")
    if total_definition_length <= 0:
        errors.append("[total_definition_length] must be greater than 0")
    if part >= total_parts:
        errors.append("[part] must be less than total_parts")
    return errors


def vocabulary_errors(vocabulary: list[str], scores: list[float] | None) -> list[str]:
    """`PutTrainedModelVocabularyAction.Request.validate`."""
    if not vocabulary:
        return ["[vocabulary] must not be empty"]
    if scores and len(scores) != len(vocabulary):
        return ["[scores] must have same length as [vocabulary]"]
    return []
