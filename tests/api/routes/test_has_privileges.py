"""`GET|POST /_security/user/_has_privileges` (api/routes/has_privileges.py)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.errors import error_of


def test_the_superuser_holds_what_it_asks_for(client: TestClient) -> None:
    body = {
        "cluster": ["monitor", "manage_inference"],
        "index": [{"names": ["i"], "privileges": ["read"]}],
        "application": [{"application": "kibana", "resources": ["*"], "privileges": ["all"]}],
    }
    for method in ("GET", "POST"):
        r = client.request(method, "/_security/user/_has_privileges", json=body)
        assert r.status_code == 200
        assert r.json() == {
            "username": "elastic",
            "has_all_requested": True,
            "cluster": {"monitor": True, "manage_inference": True},
            "index": {"i": {"read": True}},
            "application": {"kibana": {"*": {"all": True}}},
        }


def test_a_user_without_the_privilege_is_told_so(client: TestClient) -> None:
    r = client.put("/_security/user/hp_nobody", json={"password": "hp-password", "roles": []})
    assert r.status_code == 200
    r = client.post(
        "/_security/user/_has_privileges",
        json={"cluster": ["manage_inference"], "index": [{"names": ["i"], "privileges": ["read"]}]},
        auth=("hp_nobody", "hp-password"),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["username"] == "hp_nobody" and body["has_all_requested"] is False
    assert body["cluster"] == {"manage_inference": False} and body["index"] == {"i": {"read": False}}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, ("action_request_validation_exception", "Validation Failed: 1: must specify at least one privilege;")),
        ({"bogus": []}, ("parse_exception", "failed to parse privileges check. unexpected field [bogus]")),
        ({"cluster": "monitor"}, ("parse_exception", "[cluster] must be an array of strings")),
        ({"cluster": [1]}, ("parse_exception", "[cluster] must be an array of strings")),
        ({"index": ["x"]}, ("parse_exception", "[index] must be an array of objects")),
        (
            {"index": [{"names": "i", "privileges": ["read"]}]},
            ("parse_exception", "[names] must be an array of strings"),
        ),
        (
            {"application": [{"resources": ["*"]}]},
            ("parse_exception", "[application] must be an array of objects with an [application]"),
        ),
    ],
)
def test_bad_bodies_are_refused(client: TestClient, body: dict[str, Any], error: tuple[str, str]) -> None:
    assert error_of(client.post("/_security/user/_has_privileges", json=body)) == (400, *error)


def test_it_needs_an_authenticated_caller(client: TestClient) -> None:
    assert error_of(client.post("/_security/user/_has_privileges", json={"cluster": ["monitor"]}, auth=None))[:2] == (
        401,
        "security_exception",
    )
