"""`/_security` (api/routes/security.py): authenticate, users, roles and API keys, their parameters and
bodies refused as Elasticsearch refuses them. (The store and the rules are tested in tests/security; the
privilege matrix over HTTP in tests/e2e/test_security_api.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.support.errors import error_of

VALIDATION = "action_request_validation_exception"


def test_authenticate_says_who_the_caller_is(client: TestClient) -> None:
    r = client.get("/_security/_authenticate")
    assert r.status_code == 200
    body = r.json()
    assert (body["username"], body["roles"], body["enabled"]) == ("elastic", ["superuser"], True)
    assert body["authentication_realm"] == {"name": "reserved", "type": "reserved"}
    assert error_of(client.get("/_security/_authenticate", auth=None))[:2] == (401, "security_exception")


def test_a_user_is_created_read_updated_disabled_and_deleted(client: TestClient) -> None:
    assert client.put("/_security/user/sec_bob", json={"password": "bob-password", "roles": ["monitor"]}).json() == {
        "created": True
    }
    assert client.put("/_security/user/sec_bob", json={"roles": []}).json() == {"created": False}
    assert client.get("/_security/user/sec_bob").json() == {
        "sec_bob": {
            "username": "sec_bob",
            "roles": [],
            "full_name": None,
            "email": None,
            "metadata": {},
            "enabled": True,
        }
    }
    assert client.put("/_security/user/sec_bob/_disable").status_code == 200
    assert client.get("/_security/user/sec_bob").json()["sec_bob"]["enabled"] is False
    assert error_of(client.get("/_security/_authenticate", auth=("sec_bob", "bob-password")))[:2] == (
        401,
        "security_exception",
    )
    assert client.post("/_security/user/sec_bob/_enable").status_code == 200
    assert client.get("/_security/_authenticate", auth=("sec_bob", "bob-password")).json()["username"] == "sec_bob"
    assert client.delete("/_security/user/sec_bob").json() == {"found": True}
    r = client.delete("/_security/user/sec_bob")
    assert (r.status_code, r.json()) == (404, {"found": False})


def test_unknown_users_and_roles_are_empty_404s(client: TestClient) -> None:
    for path in ("/_security/user/nobody", "/_security/role/no-role"):
        r = client.get(path)
        assert (r.status_code, r.json()) == (404, {})


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        (
            "PUT",
            "/_security/user/sec_short",
            {"password": "short"},
            ("validation_exception", "Validation Failed: 1: passwords must be at least [6] characters long;"),
        ),
        (
            "PUT",
            "/_security/user/_password",
            {"password": "x"},
            ("validation_exception", "Validation Failed: 1: passwords must be at least [6] characters long;"),
        ),
        (
            "PUT",
            "/_security/user/elastic/_disable",
            None,
            ("illegal_argument_exception", "users may not update the enabled status of their own account"),
        ),
        (
            "PUT",
            "/_security/user/nobody/_disable",
            None,
            ("validation_exception", "Validation Failed: 1: user must exist in order to change enabled status;"),
        ),
        (
            "PUT",
            "/_security/role/sec_role",
            {"cluster": ["monitor"], "unknown": 1},
            ("parse_exception", "failed to parse role [sec_role]. unexpected field [unknown]"),
        ),
    ],
)
def test_bad_user_and_role_requests_are_refused(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None, error: tuple[str, str]
) -> None:
    assert error_of(client.request(method, path, json=body)) == (400, *error)


def test_an_unknown_cluster_privilege_is_named(client: TestClient) -> None:
    status, error_type, reason = error_of(client.put("/_security/role/sec_role", json={"cluster": ["bogus_priv"]}))
    assert (status, error_type) == (400, VALIDATION)
    assert reason.startswith("Validation Failed: 1: unknown cluster privilege [bogus_priv]. a privilege must be either")


def test_a_role_is_created_read_and_deleted(client: TestClient) -> None:
    assert client.put("/_security/role/sec_reader", json={"cluster": ["monitor"]}).json() == {"role": {"created": True}}
    assert client.get("/_security/role/sec_reader").json()["sec_reader"]["cluster"] == ["monitor"]
    assert client.delete("/_security/role/sec_reader").json() == {"found": True}
    r = client.delete("/_security/role/sec_reader")
    assert (r.status_code, r.json()) == (404, {"found": False})


def test_an_api_key_authenticates_and_is_invalidated(client: TestClient) -> None:
    assert error_of(client.post("/_security/api_key", json={})) == (
        400,
        VALIDATION,
        "Validation Failed: 1: api key name is required;",
    )
    key = client.post("/_security/api_key", json={"name": "sec-key"}).json()
    assert key.keys() >= {"id", "name", "api_key", "encoded"} and key["name"] == "sec-key"
    headers = {"Authorization": f"ApiKey {key['encoded']}"}
    assert client.get("/_security/_authenticate", headers=headers, auth=None).json()["authentication_type"] == "api_key"
    listed = client.get("/_security/api_key", params={"id": key["id"]}).json()["api_keys"]
    assert [k["name"] for k in listed] == ["sec-key"]
    invalidated = client.request("DELETE", "/_security/api_key", json={"ids": [key["id"]]}).json()
    assert invalidated["invalidated_api_keys"] == [key["id"]] and invalidated["error_count"] == 0
    assert error_of(client.get("/_security/_authenticate", headers=headers, auth=None))[:2] == (
        401,
        "security_exception",
    )


def test_an_unknown_api_key_id_lists_nothing(client: TestClient) -> None:
    r = client.get("/_security/api_key", params={"id": "no-such-key"})
    assert (r.status_code, r.json()) == (404, {"api_keys": []})


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"owner": "true", "username": "elastic"},
            (
                VALIDATION,
                "Validation Failed: 1: neither username nor realm-name may be specified "
                "when retrieving owned API keys;",
            ),
        ),
        (
            {"active_only": "x"},
            ("illegal_argument_exception", "Failed to parse value [x] as only [true] or [false] are allowed."),
        ),
    ],
)
def test_bad_api_key_queries_are_refused(client: TestClient, params: dict[str, str], error: tuple[str, str]) -> None:
    assert error_of(client.get("/_security/api_key", params=params)) == (400, *error)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {},
            (
                VALIDATION,
                "Validation Failed: 1: One of [api key id(s), api key name, username, realm name] "
                "must be specified if [owner] flag is false;",
            ),
        ),
        ({"bogus": 1}, ("parse_exception", "[invalidate_api_key] unknown field [bogus]")),
        ({"ids": "x"}, ("parse_exception", "[invalidate_api_key] failed to parse field [ids]")),
        ({"owner": "x"}, ("parse_exception", "[invalidate_api_key] failed to parse field [owner]")),
    ],
)
def test_bad_invalidations_are_refused(client: TestClient, body: dict[str, Any], error: tuple[str, str]) -> None:
    assert error_of(client.request("DELETE", "/_security/api_key", json=body)) == (400, *error)
