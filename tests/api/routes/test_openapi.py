"""`GET /_elserve/openapi.json` (api/routes/openapi.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.support.errors import error_of


def test_the_document_describes_the_routes_and_is_built_once(client: TestClient) -> None:
    r = client.get("/_elserve/openapi.json")
    assert r.status_code == 200
    document = r.json()
    assert document["openapi"].startswith("3.")
    assert {"/", "/_inference/{inference_id}", "/_ml/trained_models/{model_id}/_infer"} <= document["paths"].keys()
    assert "/_elserve/console" not in document["paths"]  # the page is left out of the schema
    assert client.get("/_elserve/openapi.json").json() == document


def test_an_unknown_parameter_is_refused(client: TestClient) -> None:
    assert error_of(client.get("/_elserve/openapi.json", params={"v": "2"}))[:2] == (400, "illegal_argument_exception")
