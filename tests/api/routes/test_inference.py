"""`/_inference` (api/routes/inference.py): what each route parses and refuses before a model runs,
and the endpoint list and lookups. Deploying and inferring are tested end to end (tests/e2e)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.elser import elser_config
from tests.support.errors import error_of

NOT_FOUND = (404, "resource_not_found_exception", "Inference endpoint not found [missing]")


def test_the_preconfigured_endpoints_are_listed(client: TestClient) -> None:
    r = client.get("/_inference")
    assert r.status_code == 200
    ids = [e["inference_id"] for e in r.json()["endpoints"]]
    assert ".elser-2-elasticsearch" in ids
    one = client.get("/_inference/sparse_embedding/.elser-2-elasticsearch").json()["endpoints"]
    assert [e["inference_id"] for e in one] == [".elser-2-elasticsearch"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/_inference/missing", None),
        ("GET", "/_inference/sparse_embedding/missing", None),
        ("DELETE", "/_inference/missing", None),
        ("POST", "/_inference/missing", {"input": "x"}),
        ("POST", "/_inference/sparse_embedding/missing/_stream", {"input": "x"}),
    ],
)
def test_an_unknown_endpoint_is_a_404(client: TestClient, method: str, path: str, body: dict | None) -> None:
    assert error_of(client.request(method, path, json=body)) == NOT_FOUND


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"timeout": "abc"},
            (
                "parse_exception",
                "failed to parse setting [timeout] with value [abc] as a time value: unit is missing or unrecognized",
            ),
        ),
        (
            {"bogus": "1"},
            (
                "illegal_argument_exception",
                "request [/_inference/sparse_embedding/routes-put] contains unrecognized parameter: [bogus]",
            ),
        ),
    ],
)
def test_put_parameters_are_checked_first(client: TestClient, params: dict[str, str], error: tuple[str, str]) -> None:
    r = client.put("/_inference/sparse_embedding/routes-put", params=params, json=elser_config())
    assert error_of(r) == (400, *error)
    assert client.get("/_inference/routes-put").status_code == 404  # nothing was created


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/_inference/sparse_embedding/routes-put", None, ("parse_exception", "request body is required")),
        (
            "/_inference/sparse_embedding/routes-put",
            {"service": "nope"},
            ("status_exception", "Unknown service [nope]"),
        ),
        ("/_inference/bogus_task/routes-put", elser_config(), ("status_exception", "Unknown task_type [bogus_task]")),
    ],
)
def test_put_bodies_and_task_types_are_refused(
    client: TestClient, path: str, body: dict | None, error: tuple[str, str]
) -> None:
    assert error_of(client.put(path, json=body)) == (400, *error)


def test_an_invalid_endpoint_id_is_refused(client: TestClient) -> None:
    status, error_type, reason = error_of(client.put("/_inference/sparse_embedding/UPPER", json=elser_config()))
    assert (status, error_type) == (400, "action_request_validation_exception")
    assert reason.startswith("Validation Failed: 1: Invalid inference_id; 'UPPER' can contain lowercase alphanumeric")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"priority": "urgent"},
            ("illegal_argument_exception", "[priority] must be one of [search, ingest], got [urgent]"),
        ),
        (
            {"timeout": "-5"},
            (
                "parse_exception",
                "failed to parse setting [timeout] with value [-5] as a time value: "
                "negative durations are not supported",
            ),
        ),
        (
            {"dry_run": "true"},
            (
                "illegal_argument_exception",
                "request [/_inference/sparse_embedding/missing] contains unrecognized parameter: [dry_run]",
            ),
        ),
    ],
)
def test_infer_parameters_are_checked_before_the_lookup(
    client: TestClient, params: dict[str, str], error: tuple[str, str]
) -> None:
    assert error_of(client.post("/_inference/sparse_embedding/missing", params=params, json={"input": "x"})) == (
        400,
        *error,
    )


def test_delete_parameters_are_booleans(client: TestClient) -> None:
    assert error_of(client.delete("/_inference/missing", params={"dry_run": "perhaps"})) == (
        400,
        "illegal_argument_exception",
        "Failed to parse value [perhaps] as only [true] or [false] are allowed.",
    )


def test_update_without_a_task_type_is_refused(client: TestClient) -> None:
    r = client.put("/_inference/missing/_update", json={"service_settings": {"num_allocations": 2}})
    assert error_of(r) == (400, "status_exception", "model is missing required setting [task_type]")


def test_the_routes_need_credentials(client: TestClient) -> None:
    assert error_of(client.get("/_inference", auth=None))[:2] == (401, "security_exception")
