import pytest

from elserve.errors import SecurityException
from elserve.security.authz import ApiKeyRef, Principal, authorize
from elserve.security.privileges import (
    API_KEY_CREATE,
    API_KEY_GET,
    CLUSTER_MONITOR,
    INFERENCE_GET,
    INFERENCE_POST,
    INFERENCE_PUT,
    ML_START,
    ML_STATS,
    ML_UPDATE,
    USER_AUTHENTICATE,
    USER_CHANGE_PASSWORD,
    USER_GET,
    USER_PUT,
    granted_by,
    grants,
    is_valid_cluster_privilege,
)


# The "granted by" lists of Elasticsearch's 403s (spec 6.1).
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (INFERENCE_PUT, ["manage_inference", "manage", "all"]),
        (INFERENCE_GET, ["monitor_inference", "manage_inference", "monitor", "manage", "all"]),
        (INFERENCE_POST, ["monitor_inference", "manage_inference", "monitor", "manage", "all"]),
        (ML_STATS, ["monitor_ml", "manage_ml", "monitor", "manage", "all"]),
        (ML_START, ["manage_inference", "manage_ml", "manage", "all"]),
        (ML_UPDATE, ["manage_ml", "manage", "all"]),
        (CLUSTER_MONITOR, ["monitor", "manage", "all"]),
        (USER_PUT, ["manage_security", "all"]),
        (USER_GET, ["read_security", "manage_security", "all"]),
    ],
)
def test_granted_by(action: str, expected: list[str]) -> None:
    assert granted_by(action) == expected


def test_manage_implies_monitor_but_not_security() -> None:
    assert grants("manage_inference", INFERENCE_GET) and grants("manage_ml", ML_STATS)
    assert not grants("monitor_inference", INFERENCE_PUT)
    assert grants("manage", INFERENCE_PUT) and not grants("manage", USER_PUT)
    assert grants("all", USER_PUT)


def test_action_patterns_are_privileges() -> None:
    assert is_valid_cluster_privilege("cluster:monitor/xpack/inference")
    assert grants("cluster:monitor/xpack/inference", INFERENCE_GET)  # a pattern grants `name*`
    assert not grants("cluster:monitor/xpack/inference", INFERENCE_PUT)
    assert is_valid_cluster_privilege("manage_ilm") and not grants("manage_ilm", INFERENCE_PUT)
    assert not is_valid_cluster_privilege("manage_everything")


def test_manage_own_api_key_covers_only_own_keys() -> None:
    assert grants("manage_own_api_key", API_KEY_GET, own_api_key=True)
    assert not grants("manage_own_api_key", API_KEY_GET)
    assert granted_by(API_KEY_CREATE, own_api_key=True)[0] == "manage_own_api_key"


def _user(*privileges: str, roles: tuple[str, ...] = ("r1",)) -> Principal:
    return Principal("bob", roles, tuple(r for r in roles if r != "ghost"), (frozenset(privileges),))


def test_denial_message_for_a_user() -> None:
    with pytest.raises(SecurityException) as caught:
        authorize(_user("monitor_inference", roles=("r2", "ghost", "r1")), INFERENCE_PUT)
    assert caught.value.status == 403
    assert caught.value.reason == (
        "action [cluster:admin/xpack/inference/put] is unauthorized for user [bob] with effective roles [r1,r2] "
        "(assigned roles [ghost] were not found), this action is granted by the cluster privileges "
        "[manage_inference,manage,all]"
    )


def test_api_key_is_the_intersection_of_its_descriptors_and_its_owner() -> None:
    key = Principal(
        "bob", (), (), (frozenset({"manage_inference"}), frozenset({"monitor_inference"})), api_key=ApiKeyRef("k1", "n")
    )
    authorize(key, INFERENCE_POST)
    with pytest.raises(SecurityException) as caught:
        authorize(key, INFERENCE_PUT)
    assert caught.value.reason == (
        "action [cluster:admin/xpack/inference/put] is unauthorized for API key id [k1] of user [bob], "
        "this action is granted by the cluster privileges [manage_inference,manage,all]"
    )


def test_every_user_may_authenticate_and_change_their_own_password() -> None:
    nobody = _user()
    authorize(nobody, USER_AUTHENTICATE, same_user=True)
    authorize(nobody, USER_CHANGE_PASSWORD, same_user=True)
    with pytest.raises(SecurityException):
        authorize(nobody, USER_CHANGE_PASSWORD)  # somebody else's
    key = Principal("bob", (), (), (frozenset(),), api_key=ApiKeyRef("k1", None))
    authorize(key, USER_AUTHENTICATE, same_user=True)
    with pytest.raises(SecurityException):
        authorize(key, USER_CHANGE_PASSWORD, same_user=True)  # a key never changes a password
