"""The `_infer` body and its `inference_config` update: one test per rule of the parsers and of
`BertTokenizationUpdate.apply` (`operations/infer_model_request.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from elserve.errors import ElasticsearchError
from elserve.operations.infer_model_request import (
    ConfigUpdate,
    TextExpansionSettings,
    TokenizationUpdate,
    parse_infer_model_body,
    settings_for,
)

PARSER = "cluster:internal/xpack/ml/inference/infer"


def _model(**bert: Any) -> dict[str, Any]:
    tokenization = {"do_lower_case": True, "max_sequence_length": 512, "truncate": "first", "span": -1, **bert}
    return {
        "input": {"field_names": ["text_field"]},
        "inference_config": {"text_expansion": {"tokenization": {"bert": tokenization}}},
    }


def _update(**bert: Any) -> ConfigUpdate:
    return ConfigUpdate(
        "text_expansion", tokenization=TokenizationUpdate("bert", bert.get("truncate"), bert.get("span"))
    )


def _error(call: Any) -> tuple[str, str, int, dict[str, Any] | None]:
    with pytest.raises(ElasticsearchError) as caught:
        call()
    body = caught.value.to_dict()
    return body["type"], body["reason"], caught.value.status, body.get("caused_by")


def test_body_fields() -> None:
    request = parse_infer_model_body(
        {
            "docs": [{"text_field": "a"}],
            "timeout": "2s",
            "id": "ignored",
            "inference_config": {
                "text_expansion": {"results_field": "out", "tokenization": {"bert": {"truncate": "None", "span": "4"}}}
            },
        }
    )
    assert request.docs == [{"text_field": "a"}]
    assert request.body_timeout is not None and request.body_timeout.seconds == 2.0
    assert request.update == ConfigUpdate("text_expansion", "out", TokenizationUpdate("bert", "none", 4))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ("illegal_argument_exception", "[docs] must not be null.")),
        ({"docs": None}, ("x_content_parse_exception", f"[{PARSER}] docs doesn't support values of type: VALUE_NULL")),
        ({"docs": [1]}, ("x_content_parse_exception", f"[{PARSER}] failed to parse field [docs]")),
        (
            {"docs": [], "timeout": 5},
            ("x_content_parse_exception", f"[{PARSER}] timeout doesn't support values of type: VALUE_NUMBER"),
        ),
        (
            {"docs": [], "inference_config": "x"},
            ("x_content_parse_exception", f"[{PARSER}] inference_config doesn't support values of type: VALUE_STRING"),
        ),
        ({"docz": []}, ("x_content_parse_exception", f"[{PARSER}] unknown field [docz] did you mean [docs]?")),
    ],
)
def test_body_errors(body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert _error(lambda: parse_infer_model_body(body))[:2] == expected


@pytest.mark.parametrize(
    ("config", "cause"),
    [
        (
            {},
            (
                "x_content_parse_exception",
                "[inference_config] can be a single object with any number of fields or an array where each entry is an object with a single field",  # noqa: E501  # Elasticsearch's message, whole so that it greps
            ),
        ),
        ({"nope": {}}, ("x_content_parse_exception", "[inference_config] failed to parse field [nope]")),
        ({"text_expansion": {"bogus": 1}}, ("x_content_parse_exception", "[text_expansion] unknown field [bogus]")),
        (
            {"text_expansion": {"tokenization": {"bert": {"truncate": "last"}}}},
            ("x_content_parse_exception", "[bert_tokenization_update] failed to parse field [truncate]"),
        ),
        (
            {"text_expansion": {"tokenization": {"bert": {"span": True}}}},
            (
                "x_content_parse_exception",
                "[bert_tokenization_update] span doesn't support values of type: VALUE_BOOLEAN",
            ),
        ),
        (
            {"text_expansion": {"tokenization": {"bert": {"with_special_tokens": True}}}},
            ("x_content_parse_exception", "[bert_tokenization_update] unknown field [with_special_tokens]"),
        ),
    ],
)
def test_inference_config_parse_errors(config: dict[str, Any], cause: tuple[str, str]) -> None:
    kind, reason, status, caused_by = _error(lambda: parse_infer_model_body({"docs": [], "inference_config": config}))
    assert (kind, reason, status) == (
        "x_content_parse_exception",
        f"[{PARSER}] failed to parse field [inference_config]",
        400,
    )
    assert caused_by is not None and (caused_by["type"], caused_by["reason"]) == cause


def test_unknown_truncate_names_the_enum_constant() -> None:
    body = {"docs": [], "inference_config": {"text_expansion": {"tokenization": {"bert": {"truncate": "last"}}}}}
    caused_by = _error(lambda: parse_infer_model_body(body))[3]
    assert caused_by is not None
    assert caused_by["caused_by"]["reason"] == (
        "No enum constant org.elasticsearch.xpack.core.ml.inference.trainedmodel.Tokenization.Truncate.LAST"
    )


@pytest.mark.parametrize(
    ("model", "update", "expected"),
    [
        (_model(), None, TextExpansionSettings("predicted_value", "first", -1, 512)),
        (_model(), ConfigUpdate("text_expansion", "tokens"), TextExpansionSettings("tokens", "first", -1, 512)),
        (_model(), _update(truncate="second"), TextExpansionSettings("predicted_value", "second", -1, 512)),
        (_model(), _update(), TextExpansionSettings("predicted_value", "first", -1, 512)),  # a no-op update
        # `truncate: none` drops any span, the update's included (BertTokenizationUpdate.apply).
        (_model(), _update(truncate="none", span=16), TextExpansionSettings("predicted_value", "none", -1, 512)),
        (
            _model(truncate="none", span=32),
            _update(truncate="none"),
            TextExpansionSettings("predicted_value", "none", -1, 512),
        ),
        # A model that windows keeps its truncation when only the span changes.
        (_model(truncate="none", span=32), _update(span=64), TextExpansionSettings("predicted_value", "none", 64, 512)),
    ],
)
def test_settings_for(model: dict[str, Any], update: ConfigUpdate | None, expected: TextExpansionSettings) -> None:
    assert settings_for("m", model, update) == expected


@pytest.mark.parametrize(
    ("model", "update", "expected"),
    [
        (
            _model(),
            ConfigUpdate("ner"),
            (
                "status_exception",
                "Trained model [m] is configured for task [text_expansion] but called with task [ner]",
                403,
            ),
        ),
        (
            _model(),
            _update(span=8),
            ("status_exception", "[span] must not be provided when [truncate] is [first]", 400),
        ),
        (
            _model(),
            _update(truncate="balanced", span=8),
            ("status_exception", "[span] must not be provided when [truncate] is [balanced]", 400),
        ),
        (
            _model(truncate="none"),
            _update(span=-2),
            (
                "status_exception",
                "[span] must be non-negative to indicate span length or [-1] to indicate no windowing should occur",
                400,
            ),
        ),
        (
            _model(truncate="none"),
            _update(span=600),
            (
                "status_exception",
                "[span] provided [600] must not be greater than [max_sequence_length] provided [512]",
                400,
            ),
        ),
        (
            _model(),
            ConfigUpdate("text_expansion", tokenization=TokenizationUpdate("mpnet", "first")),
            (
                "status_exception",
                "Tokenization config of type [bert] can not be updated with a request of type [mpnet]",
                400,
            ),
        ),
    ],
)
def test_settings_for_refusals(model: dict[str, Any], update: ConfigUpdate, expected: tuple[str, str, int]) -> None:
    assert _error(lambda: settings_for("m", model, update))[:3] == expected
