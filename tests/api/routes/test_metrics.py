"""`GET /_prometheus/metrics` (api/routes/metrics.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.support.errors import error_of


def test_the_exposition_counts_the_requests_served(client: TestClient) -> None:
    client.get("/")
    r = client.get("/_prometheus/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE elserve_http_requests_total counter" in r.text
    assert 'elserve_http_requests_total{method="GET",route="/",status="200"}' in r.text


def test_an_unknown_parameter_is_refused(client: TestClient) -> None:
    assert error_of(client.get("/_prometheus/metrics", params={"x": "1"})) == (
        400,
        "illegal_argument_exception",
        "request [/_prometheus/metrics] contains unrecognized parameter: [x]",
    )


def test_no_credentials_no_metrics(client: TestClient) -> None:
    assert error_of(client.get("/_prometheus/metrics", auth=None))[:2] == (401, "security_exception")
