"""`PUT _ml/trained_models` of a `pass_through` model: read as Elasticsearch's `PassThroughConfig`."""

from __future__ import annotations

import pytest

from elserve.errors import ElasticsearchError
from elserve.operations.trained_model_config import UnservedModel, parse_put_config
from tests.pass_through_model import CONFIG


def test_a_pass_through_configuration_is_accepted_with_its_defaults() -> None:
    config = parse_put_config("pt", CONFIG)
    assert config["input"] == {"field_names": ["input"]}  # TrainedModelType.PYTORCH's default input
    assert config["inference_config"] == {
        "pass_through": {
            "tokenization": {
                "bert": {
                    "do_lower_case": False,
                    "with_special_tokens": False,
                    "max_sequence_length": 512,
                    "truncate": "first",
                    "span": -1,
                }
            },
            "vocabulary": {"index": ".ml-inference-native-000002"},
        }
    }


@pytest.mark.parametrize(
    "settings, error, reason",
    [
        (
            {"expansion_type": "splade"},
            "x_content_parse_exception",
            r"\[pass_through\] unknown field \[expansion_type\]",
        ),
        (
            {"vocabulary": {"index": "x"}},
            "status_exception",
            r"illegal setting \[vocabulary\] on inference model creation",
        ),
        ({"tokenization": {"roberta": {}}}, "status_exception", r"elserve runs only \[bert\]"),
    ],
)
def test_pass_through_settings(settings: dict, error: str, reason: str) -> None:
    body = {"model_type": "pytorch", "inference_config": {"pass_through": settings}}
    with pytest.raises(ElasticsearchError, match=reason) as raised:
        parse_put_config("pt", body)
    assert raised.value.type == error


def test_other_tasks_are_refused_as_unserved() -> None:
    with pytest.raises(UnservedModel, match=r"elserve serves only \['text_expansion', 'pass_through'\] models"):
        parse_put_config("n", {"model_type": "pytorch", "inference_config": {"ner": {}}})
