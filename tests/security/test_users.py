from pathlib import Path

import pytest

from elserve.errors import SecurityException
from elserve.security.privileges import INFERENCE_PUT, Principal, authorize
from elserve.security.users import UserStore
from elserve.store import SqliteRepository


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
    assert users.authenticate("elastic", "secret-two").cluster_privileges == frozenset({"all"})


def test_generated_once(tmp_path: Path) -> None:
    users = UserStore(SqliteRepository(tmp_path / "s.db"))
    password = users.bootstrap_elastic(None)
    assert password and len(password) == 20
    assert users.bootstrap_elastic(None) is None
    assert users.authenticate("elastic", password).username == "elastic"


def test_cached_password_is_invalidated_by_a_change_elsewhere(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "s.db")
    users = UserStore(repo)
    users.bootstrap_elastic("first-pass")
    users.authenticate("elastic", "first-pass")  # now cached
    UserStore(repo).set_password("elastic", "second-pass", ("superuser",))  # e.g. reset-password
    with pytest.raises(SecurityException) as caught:
        users.authenticate("elastic", "first-pass")
    assert caught.value.status == 401


def test_remembered_answers_only_for_a_password_verified_before(tmp_path: Path) -> None:
    # The event loop's fast path: never bcrypt; None sends the caller to `authenticate`.
    users = UserStore(SqliteRepository(tmp_path / "s.db"))
    users.bootstrap_elastic("first-pass")
    assert users.remembered("elastic", "first-pass") is None
    users.authenticate("elastic", "first-pass")
    assert users.remembered("elastic", "first-pass").username == "elastic"
    assert users.remembered("elastic", "wrong-pass") is None
    with pytest.raises(SecurityException) as caught:
        users.remembered("nobody", "first-pass")
    assert caught.value.status == 401


def test_denial_message() -> None:
    bob = Principal.for_user("bob", ("inference_user",))
    with pytest.raises(SecurityException) as caught:
        authorize(bob, INFERENCE_PUT)
    assert caught.value.status == 403
    assert caught.value.reason == (
        "action [cluster:admin/xpack/inference/put] is unauthorized for user [bob] with effective roles "
        "[inference_user], this action is granted by the cluster privileges [manage_inference,manage,all]"
    )
