"""`POST /_ml/trained_models/{id}/_infer`: the body, and the `inference_config` update, as Elasticsearch reads them.

Sources (elastic/elasticsearch): `CORE/ml/action/InferModelAction.java` (`Request.PARSER`, an
`ObjectParser` named after the action: `id`, `docs` an object array, `timeout` a string,
`inference_config` a named object; `docs` required by `ExceptionsHelper.requireNonNull`),
`CORE/ml/inference/trainedmodel/TextExpansionConfigUpdate.java` (its strict parser:
`results_field`, `tokenization`), `BertTokenizationUpdate.java` and `AbstractTokenizationUpdate.java`
(`truncate`, `span`, and `apply`), `Tokenization.java` (`Truncate.fromString` and the span rules).

Parse errors are 400 `x_content_parse_exception`s naming the parser, as the object parsers word
them; the top-level field's `[line:column]` is given when the raw body is at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elserve.endpoints.field_suggestions import did_you_mean
from elserve.endpoints.json_location import json_token, top_level_fields
from elserve.errors import (
    ElasticsearchError,
    IllegalArgumentException,
    StatusException,
    XContentParseException,
    field_parse_failed,
    unsupported_value_type,
)
from elserve.operations.trained_model_config import (
    INFERENCE_CONFIG_NAMES,
    PASS_THROUGH,
    TEXT_EXPANSION,
    TOKENIZATION_NAMES,
)
from elserve.timevalue import TimeValue, parse_time

PARSER_NAME = "cluster:internal/xpack/ml/inference/infer"  # InferModelAction.NAME
_FIELDS = ("id", "docs", "timeout", "inference_config")
_TEXT_EXPANSION_UPDATE_FIELDS = ("results_field", "tokenization")
_TOKENIZATION_UPDATE_FIELDS = ("truncate", "span")
# `Tokenization.Truncate`, as `fromString` names a missing constant.
_TRUNCATE_ENUM = "org.elasticsearch.xpack.core.ml.inference.trainedmodel.Tokenization.Truncate"
_TRUNCATES = ("first", "second", "none", "balanced")
UNSET_SPAN = -1  # Tokenization.UNSET_SPAN_VALUE: no windowing
DEFAULT_RESULTS_FIELD = "predicted_value"  # InferenceConfig.DEFAULT_RESULTS_FIELD


class NamedObjectNotFoundException(ElasticsearchError):
    """A named object (an `inference_config` or `tokenization` name) no parser is registered for."""

    type = "named_object_not_found_exception"
    status = 400


@dataclass(frozen=True)
class TokenizationUpdate:
    """A `tokenization` update: its name (`bert`, ...) and the settings it changes."""

    name: str
    truncate: str | None = None
    span: int | None = None


@dataclass(frozen=True)
class ConfigUpdate:
    """The request's `inference_config`: its task name and, for `text_expansion`, what it changes."""

    name: str
    results_field: str | None = None
    tokenization: TokenizationUpdate | None = None


@dataclass(frozen=True)
class InferModelRequest:
    docs: list[dict[str, Any]]
    update: ConfigUpdate | None
    body_timeout: TimeValue | None  # the URL's `timeout` wins over it


@dataclass(frozen=True)
class TextExpansionSettings:
    """What inference runs with: the model's `text_expansion` configuration with the update applied."""

    results_field: str
    truncate: str
    span: int
    max_sequence_length: int


def parse_infer_model_body(body: Mapping[str, Any], source: bytes | None = None) -> InferModelRequest:
    """The body's fields in order; the first problem raises (the object parser stops at it)."""
    where = top_level_fields(source) if source is not None else {}

    def at(name: str) -> str:
        location = where.get(name)
        return "" if location is None else f"[{location.name}] "

    def value_at(name: str) -> str:
        location = where.get(name)
        return "" if location is None else str(location.value.location)

    docs: list[dict[str, Any]] | None = None
    update: ConfigUpdate | None = None
    timeout: TimeValue | None = None
    for name, value in body.items():
        if name not in _FIELDS:
            raise XContentParseException(
                f"{at(name)}[{PARSER_NAME}] unknown field [{name}]{did_you_mean(name, _FIELDS)}"
            )
        token = json_token(value)
        if name == "docs":
            if token not in ("START_ARRAY", "START_OBJECT"):
                raise unsupported_value_type(PARSER_NAME, "docs", token, value_at(name))
            items = value if isinstance(value, list) else [value]  # one object reads as a one-element array
            if not all(isinstance(item, Mapping) for item in items):
                raise field_parse_failed(PARSER_NAME, "docs", value_at(name))
            docs = [dict(item) for item in items]
        elif name == "id":
            if token != "VALUE_STRING":
                raise unsupported_value_type(PARSER_NAME, "id", token, value_at(name))
        elif name == "timeout":
            if token != "VALUE_STRING":
                raise unsupported_value_type(PARSER_NAME, "timeout", token, value_at(name))
            try:
                timeout = parse_time(value, "timeout", "10s")
            except ElasticsearchError as exc:
                raise field_parse_failed(PARSER_NAME, "timeout", value_at(name), caused_by=exc) from None
        else:
            if token != "START_OBJECT":
                raise unsupported_value_type(PARSER_NAME, "inference_config", token, value_at(name))
            try:
                update = _config_update(value)
            except ElasticsearchError as exc:
                raise field_parse_failed(PARSER_NAME, "inference_config", value_at(name), caused_by=exc) from None
    if docs is None:
        # Request's constructor: ExceptionsHelper.requireNonNull(docs, "docs").
        raise IllegalArgumentException("[docs] must not be null.")
    return InferModelRequest(docs, update, timeout)


def _named(field: str, value: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    """`declareNamedObject`: an object holding exactly one field, the name of a registered parser."""
    if len(value) != 1:
        raise XContentParseException(
            f"[{field}] can be a single object with any number of fields or an array where each entry is an object "
            "with a single field"
        )
    ((name, inner),) = value.items()
    if name not in names:
        raise field_parse_failed(
            field,
            name,
            caused_by=NamedObjectNotFoundException(f"unknown field [{name}]"),
        )
    if not isinstance(inner, Mapping):
        raise field_parse_failed(field, name)
    return name, inner


def _config_update(value: Mapping[str, Any]) -> ConfigUpdate:
    name, settings = _named("inference_config", value, INFERENCE_CONFIG_NAMES)
    if name not in (TEXT_EXPANSION, PASS_THROUGH):
        return ConfigUpdate(name)  # refused once the model's task is known (`update_for`)
    # `TextExpansionConfigUpdate` and `PassThroughConfigUpdate` read the same two fields.
    results_field = None
    tokenization = None
    for key, setting in settings.items():
        if key not in _TEXT_EXPANSION_UPDATE_FIELDS:
            raise XContentParseException(f"[{name}] unknown field [{key}]")
        if key == "results_field":
            if not isinstance(setting, str):
                raise unsupported_value_type(name, "results_field", json_token(setting))
            results_field = setting
        else:
            if not isinstance(setting, Mapping):
                raise unsupported_value_type(name, "tokenization", json_token(setting))
            tokenization = _tokenization_update(setting)
    return ConfigUpdate(name, results_field, tokenization)


def _tokenization_update(value: Mapping[str, Any]) -> TokenizationUpdate:
    name, settings = _named("tokenization", value, TOKENIZATION_NAMES)
    parser = f"{name}_tokenization_update"
    truncate = span = None
    for key, setting in settings.items():
        if key not in _TOKENIZATION_UPDATE_FIELDS:
            raise XContentParseException(f"[{parser}] unknown field [{key}]")
        if key == "truncate":
            if not isinstance(setting, str):
                raise unsupported_value_type(parser, "truncate", json_token(setting))
            if setting.lower() not in _TRUNCATES:  # Truncate.fromString: valueOf(value.toUpperCase(ROOT))
                raise field_parse_failed(
                    parser,
                    "truncate",
                    caused_by=IllegalArgumentException(f"No enum constant {_TRUNCATE_ENUM}.{setting.upper()}"),
                )
            truncate = setting.lower()
        else:
            span = _int(parser, key, setting)
    return TokenizationUpdate(name, truncate, span)


def _int(parser: str, key: str, setting: Any) -> int:
    """`declareInt`: a number (a fraction is cut, as Jackson's `getIntValue`) or a numeric string."""
    if isinstance(setting, bool) or not isinstance(setting, (int, float, str)):
        raise unsupported_value_type(parser, key, json_token(setting))
    try:
        number = int(float(setting)) if isinstance(setting, str) else int(setting)
    except ValueError:
        raise field_parse_failed(parser, key) from None
    if not -(2**31) <= number <= 2**31 - 1:
        raise field_parse_failed(parser, key)
    return number


# -- applying the update to the model's configuration (on the node, per document) --------------------


def _apply_failure(cause: ElasticsearchError) -> StatusException:
    """An update that does not apply fails its task; `taskOperationFailureToStatusException` wraps the cause."""
    return StatusException(cause.reason, cause.status, caused_by=cause)


def settings_for(model_id: str, model_config: Mapping[str, Any], update: ConfigUpdate | None) -> TextExpansionSettings:
    """The model's `text_expansion` settings with `update` applied, or Elasticsearch's refusal."""
    task, config = next(iter((model_config.get("inference_config") or {TEXT_EXPANSION: {}}).items()))
    tokenization = dict(config.get("tokenization") or {"bert": {}})
    ((tokenizer, values),) = tokenization.items()
    values = dict(values or {})
    original = TextExpansionSettings(
        results_field=config.get("results_field") or DEFAULT_RESULTS_FIELD,
        truncate=values.get("truncate", "first"),
        span=values.get("span", UNSET_SPAN),
        max_sequence_length=values.get("max_sequence_length", 512),
    )
    if update is None:
        return original
    if update.name != task:
        # TrainedModelDeploymentTask.infer: the update's task must be the model's.
        raise StatusException(
            f"Trained model [{model_id}] is configured for task [{task}] but called with task [{update.name}]", 403
        )
    results_field = update.results_field or original.results_field
    change = update.tokenization
    if change is None:
        return TextExpansionSettings(results_field, original.truncate, original.span, original.max_sequence_length)
    if change.name != tokenizer:
        raise _apply_failure(
            StatusException(
                f"Tokenization config of type [{tokenizer}] can not be updated with a request of type [{change.name}]",
                400,
            )
        )
    try:
        truncate, span = _apply_tokenization(original, change)
    except IllegalArgumentException as exc:
        raise _apply_failure(exc) from None
    return TextExpansionSettings(results_field, truncate, span, original.max_sequence_length)


def _check_span_and_truncate(truncate: str | None, span: int | None) -> None:
    """`Tokenization.validateSpanAndTruncate`: a span only goes with `truncate: none`."""
    if span is not None and span != UNSET_SPAN and truncate is not None and truncate != "none":
        raise IllegalArgumentException(f"[span] must not be provided when [truncate] is [{truncate}]")


def _apply_tokenization(original: TextExpansionSettings, change: TokenizationUpdate) -> tuple[str, int]:
    """`BertTokenizationUpdate.apply`, then the new `BertTokenization`'s own checks."""
    _check_span_and_truncate(change.truncate, change.span)
    if change.truncate is None and change.span is None:
        return original.truncate, original.span
    if change.truncate == "none":
        # Elasticsearch drops the span when the update sets `truncate: none` (it builds the new
        # tokenization with no span), whatever span the update or the model had.
        return "none", UNSET_SPAN
    truncate = change.truncate or original.truncate
    span = original.span if change.span is None else change.span
    if span < 0 and span != UNSET_SPAN:
        raise IllegalArgumentException(
            f"[span] must be non-negative to indicate span length "
            f"or [{UNSET_SPAN}] to indicate no windowing should occur"
        )
    if span > original.max_sequence_length:
        raise IllegalArgumentException(
            f"[span] provided [{span}] must not be greater than [max_sequence_length] provided "
            f"[{original.max_sequence_length}]"
        )
    _check_span_and_truncate(truncate, span)
    return truncate, span
