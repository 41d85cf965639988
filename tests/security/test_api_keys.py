import base64
from pathlib import Path

import pytest

from elserve.errors import ActionRequestValidationException, IllegalArgumentException, SecurityException
from elserve.security.authc import Security
from elserve.security.authz import authorize
from elserve.security.privileges import INFERENCE_POST, INFERENCE_PUT
from elserve.security.roles import parse_role
from elserve.security.users import parse_put_user
from elserve.store import SqliteRepository


@pytest.fixture
def sec(tmp_path: Path) -> Security:
    sec = Security(SqliteRepository(tmp_path / "s.db"))
    sec.roles.put(parse_role("admin", {"cluster": ["manage_inference"]}))
    sec.users.put(parse_put_user("bob", {"password": "bob-pass", "roles": ["admin"]}))
    return sec


def _bob(sec: Security):
    return sec.principal(sec.users.get("bob"))


def test_key_without_descriptors_has_a_snapshot_of_its_owner(sec: Security) -> None:
    created = sec.api_keys.create({"name": "k"}, _bob(sec), sec.role_snapshot(_bob(sec))).to_doc()
    assert base64.b64decode(created["encoded"]).decode() == f"{created['id']}:{created['api_key']}"
    assert len(created["id"]) == 20 and "expiration" not in created
    key = sec.api_key(created["encoded"])
    authorize(key, INFERENCE_PUT)
    # The owner's role changes later; the key keeps what it was created with (Elasticsearch's limited_by).
    sec.roles.put(parse_role("admin", {"cluster": []}))
    authorize(sec.api_key(created["encoded"]), INFERENCE_PUT)


def test_key_is_limited_by_its_role_descriptors(sec: Security) -> None:
    body = {"name": "k", "role_descriptors": {"ro": {"cluster": ["monitor_inference"]}}}
    key = sec.api_key(sec.api_keys.create(body, _bob(sec), sec.role_snapshot(_bob(sec))).to_doc()["encoded"])
    authorize(key, INFERENCE_POST)
    with pytest.raises(SecurityException) as caught:
        authorize(key, INFERENCE_PUT)
    assert caught.value.status == 403
    # ...and never exceeds its owner: asking for `all` gives the owner's manage_inference at most.
    body = {"name": "k2", "role_descriptors": {"rw": {"cluster": ["all"]}}}
    key = sec.api_key(sec.api_keys.create(body, _bob(sec), sec.role_snapshot(_bob(sec))).to_doc()["encoded"])
    authorize(key, INFERENCE_PUT)
    assert not key.allows("cluster:admin/xpack/security/user/put")


def test_expired_invalidated_and_wrong_keys_are_refused(sec: Security) -> None:
    expired = sec.api_keys.create({"name": "k", "expiration": "0s"}, _bob(sec), []).to_doc()
    live = sec.api_keys.create({"name": "k", "expiration": "1d"}, _bob(sec), []).to_doc()
    sec.api_key(live["encoded"])
    result = sec.api_keys.invalidate(sec.api_keys.find(ids=[live["id"]]))
    assert result == {"invalidated_api_keys": [live["id"]], "previously_invalidated_api_keys": [], "error_count": 0}
    wrong = base64.b64encode(f"{live['id']}:not-the-secret".encode()).decode()
    for encoded, detail in (
        (expired["encoded"], "api key is expired"),
        (live["encoded"], "api key has been invalidated"),
        (wrong, f"invalid credentials for API key [{live['id']}]"),
        ("%%%", "invalid ApiKey value"),
    ):
        with pytest.raises(SecurityException) as caught:
            sec.api_key(encoded)
        assert caught.value.status == 401
        assert caught.value.metadata == {"additional_unsuccessful_credentials": f"API key: {detail}"}


def test_the_secret_is_stored_hashed(sec: Security, tmp_path: Path) -> None:
    created = sec.api_keys.create({"name": "k"}, _bob(sec), []).to_doc()
    assert created["api_key"].encode() not in (tmp_path / "s.db").read_bytes()


def test_create_validation(sec: Security) -> None:
    with pytest.raises(ActionRequestValidationException) as caught:
        sec.api_keys.create({"name": "_k", "metadata": {"_m": 1}}, _bob(sec), [])
    assert caught.value.reason == (
        "Validation Failed: 1: api key name may not begin with an underscore;"
        "2: API key metadata keys may not start with [_];"
    )


def test_a_key_may_only_derive_a_key_without_privileges(sec: Security) -> None:
    key = sec.api_key(sec.api_keys.create({"name": "k"}, _bob(sec), sec.role_snapshot(_bob(sec))).to_doc()["encoded"])
    with pytest.raises(IllegalArgumentException):
        sec.api_keys.create({"name": "child"}, key, [])
    child = sec.api_keys.create({"name": "child", "role_descriptors": {"none": {}}}, key, []).to_doc()
    assert not sec.api_key(child["encoded"]).allows(INFERENCE_POST)
