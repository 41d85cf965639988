from pathlib import Path

import pytest

from elserve.errors import ActionRequestValidationException, IllegalArgumentException, ParseException
from elserve.security.roles import RoleStore, parse_role
from elserve.store import SqliteRepository


def test_role_round_trip_with_index_privileges_stored(tmp_path: Path) -> None:
    roles = RoleStore(SqliteRepository(tmp_path / "s.db"))
    body = {
        "cluster": ["monitor_inference"],
        "indices": [{"names": "logs-*", "privileges": ["read"]}],
        "description": "d",
    }
    assert roles.put(parse_role("reader", body)) is True
    assert roles.put(parse_role("reader", body)) is False
    assert roles.get("reader").to_doc() == {
        "cluster": ["monitor_inference"],
        "indices": [{"names": ["logs-*"], "privileges": ["read"]}],
        "applications": [],
        "run_as": [],
        "metadata": {},
        "transient_metadata": {"enabled": True},
        "description": "d",
    }
    assert roles.delete("reader") and not roles.delete("reader")


def test_reserved_roles(tmp_path: Path) -> None:
    roles = RoleStore(SqliteRepository(tmp_path / "s.db"))
    assert roles.get("superuser").cluster == ("all",)
    assert roles.get("inference_admin").cluster == ("manage_inference",)
    with pytest.raises(ActionRequestValidationException) as caught:
        parse_role("superuser", {})
    assert caught.value.reason == "Validation Failed: 1: Role [superuser] is reserved and may not be used.;"
    with pytest.raises(IllegalArgumentException) as deleted:
        roles.delete("superuser")
    assert deleted.value.reason == "role [superuser] is reserved and cannot be deleted"


def test_unknown_cluster_privilege() -> None:
    with pytest.raises(ActionRequestValidationException) as caught:
        parse_role("r", {"cluster": ["manage_everything"]})
    assert caught.value.reason.startswith(
        "Validation Failed: 1: unknown cluster privilege [manage_everything]. a privilege must be either one of the "
        "predefined cluster privilege names [none,"
    )
    assert caught.value.reason.endswith("] or a pattern over one of the available cluster actions;")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"clusters": []}, "failed to parse role [r]. unexpected field [clusters]"),
        ({"indices": [{"privileges": ["read"]}]},
         "failed to parse indices privileges for role [r]. missing required [names] field"),
        ({"indices": [{"names": ["a"]}]},
         "failed to parse indices privileges for role [r]. missing required [privileges] field"),
        ({"cluster": "all"} | {"cluster": 3}, "failed to parse role [r]. could not parse [cluster] field. expected a string array"),  # noqa: E501  # Elasticsearch's message, whole so that it greps
    ],
)  # fmt: skip
def test_role_parse_errors(body: dict, reason: str) -> None:
    with pytest.raises(ParseException) as caught:
        parse_role("r", body)
    assert caught.value.reason == reason
