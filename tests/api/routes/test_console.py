"""The console page and its assets, and `GET /_elserve/errors` (api/routes/console.py)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.errors import error_of


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/_elserve/console", "text/html; charset=utf-8"),
        ("/_elserve/console/", "text/html; charset=utf-8"),
        ("/_elserve/console/console.js", "text/javascript; charset=utf-8"),
        ("/_elserve/console/console.css", "text/css; charset=utf-8"),
    ],
)
def test_the_page_and_its_assets_are_served_to_anyone_under_a_strict_policy(
    client: TestClient, path: str, media_type: str
) -> None:
    r = client.get(path, auth=None)  # they hold no data: the page asks for credentials itself
    assert r.status_code == 200 and r.content
    assert r.headers["content-type"] == media_type
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache"


def test_an_unknown_asset_has_no_handler(client: TestClient) -> None:
    r = client.get("/_elserve/console/other.js", auth=None)
    # Elasticsearch's answer to a path no handler takes: a bare `error` string.
    assert r.status_code == 400
    assert r.json() == {
        "error": "no handler found for uri [/_elserve/console/other.js] and method [GET]",
        "status": 400,
    }


def test_recent_errors_need_credentials_and_list_what_went_wrong(client: TestClient) -> None:
    assert error_of(client.get("/_elserve/errors", auth=None))[:2] == (401, "security_exception")
    r = client.get("/_elserve/errors")
    assert r.status_code == 200
    assert isinstance(r.json()["errors"], list)


def test_recent_errors_take_no_unknown_parameter(client: TestClient) -> None:
    assert error_of(client.get("/_elserve/errors", params={"size": "3"})) == (
        400,
        "illegal_argument_exception",
        "request [/_elserve/errors] contains unrecognized parameter: [size]",
    )
