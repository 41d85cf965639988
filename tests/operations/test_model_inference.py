"""Reading a document's input as Elasticsearch does (`XContentMapValues.extractValue`,
`NlpInferenceInput.extractInput`), and the deployment an id names (`pickAssignment`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from elserve.deployments.states import DeploymentState
from elserve.errors import ElasticsearchError
from elserve.java_text import java_text
from elserve.operations.model_inference import (
    TrainedModelInference,
    document_text,
    extract_value,
    find_deployment,
    input_field,
)


@pytest.mark.parametrize(
    ("path", "doc", "expected"),
    [
        ("text_field", {"text_field": "a"}, "a"),
        ("a.b", {"a": {"b": "x"}}, "x"),
        ("a.b", {"a.b": "x"}, "x"),  # a key holding the dot
        ("a.b.c", {"a": {"b.c": "x"}}, "x"),
        ("a.b", {"a": [{"b": "x"}, {"b": "y"}, {"c": 1}]}, ["x", "y"]),
        ("a.b", {"a": {"b": None}}, None),
        ("a.b", {"a": "flat"}, None),
        ("missing", {"text_field": "a"}, None),
    ],
)
def test_extract_value(path: str, doc: dict[str, Any], expected: Any) -> None:
    assert extract_value(path, doc) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7, "7"),
        (1.5, "1.5"),
        (1e20, "1.0E20"),
        (True, "true"),
        (["a", 1], "[a, 1]"),
        ({"k": {"x": False}}, "{k={x=false}}"),
        ({"b": 1, "a": [{"z": 1, "y": 2}]}, "{b=1, a=[{z=1, y=2}]}"),  # LinkedHashMap: in the order sent
    ],
)
def test_docs_print_as_ordered_maps(value: Any, text: str) -> None:
    assert java_text(value, ordered=True) == text


def test_document_text_errors() -> None:
    assert document_text({"body": {"text": "hi"}}, "body.text") == "hi"
    with pytest.raises(ElasticsearchError, match=r"^Input field \[t\] does not exist in the source document$"):
        document_text({}, "t")
    with pytest.raises(ElasticsearchError, match=r"^Input value \[\{b=1, a=2\}\] for field \[t\] must be a string$"):
        document_text({"t": {"b": 1, "a": 2}}, "t")


def test_input_field_defaults_to_text_field() -> None:
    assert input_field({}) == "text_field"
    assert input_field({"input": {"field_names": ["content.body"]}}) == "content.body"


@dataclass
class _Deployment:
    deployment_id: str
    model_id: str
    state: DeploymentState


class _Manager:
    def __init__(self, *deployments: _Deployment) -> None:
        self._deployments = deployments

    def get(self, deployment_id: str) -> _Deployment | None:
        return next((d for d in self._deployments if d.deployment_id == deployment_id), None)

    def of_model(self, model_id: str) -> list[_Deployment]:
        return [d for d in self._deployments if d.model_id == model_id]


def test_find_deployment_by_id_then_by_model_started_first() -> None:
    failed = _Deployment("d1", "m", DeploymentState.FAILED)
    starting = _Deployment("d2", "m", DeploymentState.STARTING)
    started = _Deployment("d3", "m", DeploymentState.STARTED)
    manager = _Manager(failed, starting, started)
    assert find_deployment(manager, "d1") is failed
    assert find_deployment(manager, "m") is started
    assert find_deployment(_Manager(failed, starting), "m") is starting
    assert find_deployment(manager, "other") is None


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (DeploymentState.FAILED, "Trained model [d1] is [failed]"),
        (DeploymentState.STOPPING, "Trained model [d1] is [stopping]"),
        (DeploymentState.STARTING, "Trained model deployment [m] is not allocated to any nodes"),  # the id asked for
    ],
)
def test_a_deployment_that_cannot_serve_is_a_409_before_the_request_is_read(
    state: DeploymentState, reason: str
) -> None:
    inference = TrainedModelInference(_Manager(_Deployment("d1", "m", state)), lambda: ["m"])
    with pytest.raises(ElasticsearchError) as caught:
        inference.deployment("m")
    assert (caught.value.status, caught.value.reason) == (409, reason)


def test_nothing_deployed() -> None:
    inference = TrainedModelInference(_Manager(), lambda: ["known"])
    with pytest.raises(ElasticsearchError) as known:
        inference.deployment("known")
    assert known.value.status == 409 and known.value.reason.startswith("Model [known] must be deployed to use.")
    with pytest.raises(ElasticsearchError) as unknown:
        inference.deployment("unknown")
    assert (unknown.value.status, unknown.value.type) == (404, "resource_not_found_exception")
