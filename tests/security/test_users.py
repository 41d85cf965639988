from pathlib import Path

import pytest

from elserve.errors import (
    ActionRequestValidationException,
    IllegalArgumentException,
    ParseException,
    SecurityException,
    ValidationException,
)
from elserve.security import users as users_module
from elserve.security.passwords import hash_password
from elserve.security.users import UserStore, parse_change_password, parse_put_user
from elserve.store import SqliteRepository


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return UserStore(SqliteRepository(tmp_path / "s.db"))


def test_env_password_wins_and_is_stored_hashed(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "s.db")
    users = UserStore(repo)
    assert users.bootstrap_elastic("secret-one") is None
    stored = repo.get("user", "elastic")
    assert "secret-one" not in str(stored)
    assert users.authenticate("elastic", "secret-one").username == "elastic"
    users.bootstrap_elastic("secret-two")
    with pytest.raises(SecurityException):
        users.authenticate("elastic", "secret-one")
    assert users.authenticate("elastic", "secret-two").roles == ("superuser",)


def test_env_password_is_ignored_once_a_password_of_its_own_is_set(
    users: UserStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 24 row 4: ELASTIC_PASSWORD is a bootstrap password; the API's password wins, enabled is kept."""
    users.bootstrap_elastic("secret-one")
    users.set_password("elastic", "own-password")
    users.set_enabled("elastic", False)
    users.set_enabled("elastic", True)  # kept through enable and disable: still a password of its own
    with caplog.at_level("WARNING", logger="elserve.security"):
        users.bootstrap_elastic("secret-one")
    assert users.authenticate("elastic", "own-password").username == "elastic"
    assert [r.getMessage()[:26] for r in caplog.records] == ["ELASTIC_PASSWORD is ignore"]
    users.set_enabled("elastic", False)
    users.bootstrap_elastic("secret-one")
    assert users.get("elastic").enabled is False


def test_a_bootstrap_password_does_not_enable_elastic(users: UserStore) -> None:
    users.bootstrap_elastic("secret-one")
    users.set_enabled("elastic", False)
    users.bootstrap_elastic("secret-two")
    user = users.get("elastic")
    assert user.enabled is False
    users.set_enabled("elastic", True)
    assert users.authenticate("elastic", "secret-two").username == "elastic"


def test_an_elastic_stored_before_the_marker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store written before the bootstrap marker: the variable still applies while it matches the stored
    password; a stored password that differs may have been set through the API, so it is kept (and logged)."""
    repo = SqliteRepository(tmp_path / "s.db")
    repo.put("user", "elastic", {"password_hash": hash_password("old-env"), "roles": ["superuser"], "enabled": True})
    users = UserStore(repo)
    users.bootstrap_elastic("old-env")  # matches: still the bootstrap password, marked so
    users.bootstrap_elastic("new-env")
    assert users.authenticate("elastic", "new-env").username == "elastic"
    repo.put("user", "elastic", {"password_hash": hash_password("rotated"), "roles": ["superuser"], "enabled": True})
    with caplog.at_level("WARNING", logger="elserve.security"):
        users.bootstrap_elastic("new-env")
    assert users.authenticate("elastic", "rotated").username == "elastic"
    assert "ELASTIC_PASSWORD is ignored" in caplog.text


def test_generated_once(users: UserStore) -> None:
    password = users.bootstrap_elastic(None)
    assert password and len(password) == 20
    assert users.bootstrap_elastic(None) is None
    assert users.authenticate("elastic", password).username == "elastic"


def test_cached_password_is_invalidated_by_a_change_elsewhere(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "s.db")
    users = UserStore(repo)
    users.bootstrap_elastic("first-pass")
    users.authenticate("elastic", "first-pass")  # now cached
    UserStore(repo).set_password("elastic", "second-pass")  # e.g. reset-password from another process
    with pytest.raises(SecurityException) as caught:
        users.authenticate("elastic", "first-pass")
    assert caught.value.status == 401


def test_remembered_answers_only_for_a_password_verified_before(users: UserStore) -> None:
    # The event loop's fast path: never bcrypt; None sends the caller to `authenticate`.
    users.bootstrap_elastic("first-pass")
    assert users.remembered("elastic", "first-pass") is None
    users.authenticate("elastic", "first-pass")
    assert users.remembered("elastic", "first-pass").username == "elastic"
    assert users.remembered("elastic", "wrong-pass") is None
    # An unknown user is not answered fast either (that would tell who exists).
    assert users.remembered("nobody", "first-pass") is None


def test_unknown_and_disabled_users_pay_the_same_bcrypt(users: UserStore, monkeypatch: pytest.MonkeyPatch) -> None:
    users.put(parse_put_user("bob", {"password": "bob-pass", "roles": []}))
    users.put(parse_put_user("eve", {"password": "eve-pass", "roles": [], "enabled": False}))
    checked: list[str] = []
    real = users_module.verify_password
    monkeypatch.setattr(users_module, "verify_password", lambda p, h: checked.append(h[:7]) or real(p, h))
    for name, password in (("bob", "wrong-pass"), ("nobody", "wrong-pass"), ("eve", "eve-pass")):
        with pytest.raises(SecurityException) as caught:
            users.authenticate(name, password)
        assert caught.value.status == 401
        assert caught.value.reason == f"unable to authenticate user [{name}]"
    # One bcrypt check each, all at cost 10.
    assert checked == ["$2b$10$"] * 3


def test_put_user_creates_then_updates_keeping_the_password(users: UserStore) -> None:
    assert users.put(parse_put_user("bob", {"password": "bob-pass", "roles": ["r1"], "full_name": "Bob"}))
    assert not users.put(parse_put_user("bob", {"roles": ["r2"]}))
    bob = users.get("bob")
    assert bob.roles == ("r2",) and bob.full_name is None
    assert users.authenticate("bob", "bob-pass").username == "bob"
    assert users.get("bob").to_doc() == {
        "username": "bob",
        "roles": ["r2"],
        "full_name": None,
        "email": None,
        "metadata": {},
        "enabled": True,
    }


def test_a_new_user_needs_a_password(users: UserStore) -> None:
    with pytest.raises(ValidationException) as caught:
        users.put(parse_put_user("bob", {"roles": []}))
    assert (
        caught.value.reason
        == "Validation Failed: 1: password must be specified unless you are updating an existing user;"
    )


@pytest.mark.parametrize(
    ("username", "body", "error", "reason"),
    [
        ("bob", {"password": "12345", "roles": []}, ValidationException,
         "Validation Failed: 1: passwords must be at least [6] characters long;"),
        ("bob", {"password": "123456"}, ActionRequestValidationException, "Validation Failed: 1: roles are missing;"),
        ("elastic", {"password": "123456", "roles": []}, ActionRequestValidationException,
         "Validation Failed: 1: user [elastic] is reserved and only the password can be changed;"),
        ("bob", {"password": "123456", "roles": [], "age": 3}, ParseException,
         "failed to parse add user request. unexpected field [age]"),
        ("bob", {"password": "123456", "roles": [], "enabled": "yes"}, ParseException,
         "expected field [enabled] to be of type boolean, but found [VALUE_STRING] instead"),
        ("bob", {"password": "123456", "roles": [], "metadata": {"_x": 1}}, ActionRequestValidationException,
         "Validation Failed: 1: metadata keys may not start with [_];"),
        ("bob", {"password_hash": "$2b$12$" + "a" * 53, "roles": []}, IllegalArgumentException,
         "Provided password hash uses [BCRYPT12] but the configured hashing algorithm is [BCRYPT]"),
        (" bob", {"password": "123456", "roles": []}, ActionRequestValidationException,
         "Validation Failed: 1: User names must be at least 1 and no more than 1024 characters. They can contain "
         "alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin "
         "(ASCII) block. Leading or trailing whitespace is not allowed.;"),
    ],
)  # fmt: skip
def test_put_user_validation(username: str, body: dict, error: type, reason: str) -> None:
    with pytest.raises(error) as caught:
        parse_put_user(username, body)
    assert caught.value.reason == reason
    assert caught.value.status == 400


def test_a_supplied_bcrypt_hash_is_kept(users: UserStore) -> None:
    users.put(parse_put_user("bob", {"password_hash": hash_password("from-a-hash"), "roles": []}))
    assert users.authenticate("bob", "from-a-hash").username == "bob"


def test_change_password_and_enabled(users: UserStore) -> None:
    users.put(parse_put_user("bob", {"password": "bob-pass", "roles": []}))
    users.authenticate("bob", "bob-pass")
    users.set_password_hash("bob", parse_change_password({"password": "new-pass"}))
    with pytest.raises(SecurityException):
        users.authenticate("bob", "bob-pass")
    users.set_enabled("bob", False)
    with pytest.raises(SecurityException):
        users.authenticate("bob", "new-pass")
    users.set_enabled("bob", True)
    assert users.authenticate("bob", "new-pass").username == "bob"
    with pytest.raises(ValidationException) as caught:
        users.set_password("nobody", "whatever")
    assert caught.value.reason == "Validation Failed: 1: user must exist in order to change password;"
    with pytest.raises(ActionRequestValidationException):
        parse_change_password({})


def test_reserved_user_cannot_be_deleted(users: UserStore) -> None:
    users.bootstrap_elastic("elastic-pass")
    with pytest.raises(IllegalArgumentException) as caught:
        users.delete("elastic")
    assert caught.value.reason == "user [elastic] is reserved and cannot be deleted"
    assert users.get("elastic").to_doc()["metadata"] == {"_reserved": True}
    assert users.delete("nobody") is False
