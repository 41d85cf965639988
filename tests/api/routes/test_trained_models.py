"""`/_ml/trained_models` (api/routes/trained_models.py): the listing's paging, the upload routes' and the
deployment routes' parameters and bodies, refused as Elasticsearch refuses them before any model runs.
Uploading, deploying and inferring are tested end to end (tests/e2e/test_model_upload.py,
test_trained_models_api.py, test_trained_model_infer.py)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.errors import error_of

BOOLEAN = "Failed to parse value [{}] as only [true] or [false] are allowed."
NO_DEPLOYMENT = (404, "resource_not_found_exception", "No known model deployment with id [missing]")


def test_nothing_uploaded_lists_nothing(client: TestClient) -> None:
    assert client.get("/_ml/trained_models").json() == {"count": 0, "trained_model_configs": []}
    assert client.get("/_ml/trained_models/_stats").json() == {"count": 0, "trained_model_stats": []}


@pytest.mark.parametrize("path", ["/_ml/trained_models/missing", "/_ml/trained_models/missing/_stats"])
def test_an_unknown_model_is_a_404(client: TestClient, path: str) -> None:
    assert error_of(client.get(path)) == (
        404,
        "resource_not_found_exception",
        "No known trained model with model_id [missing]",
    )


@pytest.mark.parametrize("path", ["/_ml/trained_models", "/_ml/trained_models/_stats"])
@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"size": "-1"}, "Parameter [size] cannot be < 0"),
        ({"from": "-1"}, "Parameter [from] cannot be < 0"),
        ({"from": "abc"}, "Failed to parse int parameter [from] with value [abc]"),
        ({"allow_no_match": "maybe"}, BOOLEAN.format("maybe")),
    ],
)
def test_paging_and_flags_are_checked(client: TestClient, path: str, params: dict[str, str], reason: str) -> None:
    assert error_of(client.get(path, params=params)) == (400, "illegal_argument_exception", reason)


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        (
            "/_ml/trained_models/routes-model/definition/abc",
            {},
            "Failed to parse int parameter [part] with value [abc]",
        ),
        ("/_ml/trained_models/routes-model/definition/0", {}, "[definition] must not be null."),
        ("/_ml/trained_models/routes-model/vocabulary", {}, "[vocabulary] must not be null."),
    ],
)
def test_upload_parts_are_parsed_first(client: TestClient, path: str, body: dict[str, Any], reason: str) -> None:
    assert error_of(client.put(path, json=body)) == (400, "illegal_argument_exception", reason)


def test_delete_needs_a_known_model_and_a_boolean_force(client: TestClient) -> None:
    assert error_of(client.delete("/_ml/trained_models/missing")) == (
        404,
        "resource_not_found_exception",
        "Could not find trained model [missing]",
    )
    assert error_of(client.delete("/_ml/trained_models/missing", params={"force": "x"})) == (
        400,
        "illegal_argument_exception",
        BOOLEAN.format("x"),
    )


@pytest.mark.parametrize(
    ("params", "body", "error"),
    [
        (
            {"priority": "urgent"},
            None,
            (
                "illegal_argument_exception",
                "No enum constant org.elasticsearch.xpack.core.ml.inference.assignment.Priority.URGENT",
            ),
        ),
        (
            {"number_of_allocations": "abc"},
            None,
            ("illegal_argument_exception", "Failed to parse int parameter [number_of_allocations] with value [abc]"),
        ),
        (
            {"timeout": "xyz"},
            None,
            (
                "parse_exception",
                "failed to parse setting [timeout] with value [xyz] as a time value: unit is missing or unrecognized",
            ),
        ),
        (
            {},
            {"priority": 5},
            (
                "x_content_parse_exception",
                "[1:13] [cluster:admin/xpack/ml/trained_models/deployment/start] "
                "priority doesn't support values of type: VALUE_NUMBER",
            ),
        ),
    ],
)
def test_start_options_are_parsed_before_the_model_is_looked_at(
    client: TestClient, params: dict[str, str], body: dict[str, Any] | None, error: tuple[str, str]
) -> None:
    r = client.post("/_ml/trained_models/.elser_model_2/deployment/_start", params=params, json=body)
    assert error_of(r) == (400, *error)
    assert client.get("/_ml/trained_models/_stats").json()["count"] == 0  # nothing was deployed


def test_start_of_an_unknown_model_is_a_404(client: TestClient) -> None:
    assert error_of(client.post("/_ml/trained_models/missing/deployment/_start")) == (
        404,
        "resource_not_found_exception",
        "Could not find trained model [missing]",
    )


def test_update_and_stop_of_an_unknown_deployment(client: TestClient) -> None:
    assert (
        error_of(client.post("/_ml/trained_models/missing/deployment/_update", json={"number_of_allocations": 2}))
        == NO_DEPLOYMENT
    )
    # Stop allows no match unless told otherwise, in the query (older clients) or the body (newer).
    assert client.post("/_ml/trained_models/missing/deployment/_stop").json() == {"stopped": True}
    assert (
        error_of(client.post("/_ml/trained_models/missing/deployment/_stop", params={"allow_no_match": "false"}))
        == NO_DEPLOYMENT
    )
    assert (
        error_of(client.post("/_ml/trained_models/missing/deployment/_stop", json={"allow_no_match": False}))
        == NO_DEPLOYMENT
    )
    # With a body, only the body counts.
    r = client.post("/_ml/trained_models/missing/deployment/_stop", params={"allow_no_match": "false"}, json={})
    assert r.json() == {"stopped": True}


@pytest.mark.parametrize(
    ("path", "params", "body", "error"),
    [
        ("/_ml/trained_models/missing/_infer", {}, None, (400, "status_exception", "requires body")),
        (
            "/_ml/trained_models/missing/_infer",
            {},
            {"docs": [{"text_field": "x"}]},
            (404, "resource_not_found_exception", "Could not find trained model [missing]"),
        ),
        (
            "/_ml/trained_models/missing/_infer",
            {"timeout": "zz"},
            {"docs": [{"text_field": "x"}]},
            (
                400,
                "parse_exception",
                "failed to parse setting [timeout] with value [zz] as a time value: unit is missing or unrecognized",
            ),
        ),
        (
            "/_ml/trained_models/missing/_infer",
            {},
            {"docs": "x"},
            (
                400,
                "x_content_parse_exception",
                "[1:9] [cluster:internal/xpack/ml/inference/infer] docs doesn't support values of type: VALUE_STRING",
            ),
        ),
        (
            "/_ml/trained_models/missing/deployment/_infer",
            {},
            {"docs": [{"text_field": "x"}, {"text_field": "y"}]},
            (400, "validation_exception", "Validation Failed: 1: multiple documents are not supported;"),
        ),
    ],
)
def test_infer_requests_are_checked(
    client: TestClient, path: str, params: dict[str, str], body: dict[str, Any] | None, error: tuple[int, str, str]
) -> None:
    assert error_of(client.post(path, params=params, json=body)) == error


def test_the_older_infer_route_warns_that_it_is_deprecated(client: TestClient) -> None:
    r = client.post("/_ml/trained_models/missing/deployment/_infer", json={"docs": [{"text_field": "x"}]})
    assert r.status_code == 404
    assert "[POST /_ml/trained_models/{model_id}/deployment/_infer] is deprecated!" in r.headers["warning"]
