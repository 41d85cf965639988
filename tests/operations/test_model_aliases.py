"""Model alias rules (TransportPutTrainedModelAliasAction, TransportDeleteTrainedModelAliasAction), on
a real SQLite store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from elserve.deployments.states import DeploymentState
from elserve.errors import (
    ActionRequestValidationException,
    ElasticsearchError,
    ResourceNotFoundException,
)
from elserve.operations.model_aliases import ModelAliases
from elserve.store import SqliteRepository

PASS = {"model_type": "pytorch", "inference_config": {"pass_through": {}}}
EXPANSION = {"model_type": "pytorch", "inference_config": {"text_expansion": {}}}
MODELS: dict[str, dict[str, Any]] = {"a": PASS, "b": PASS, "c": EXPANSION}


class _Deployment:
    def __init__(self, state: DeploymentState) -> None:
        self.state = state


def _aliases(tmp_path: Path) -> ModelAliases:
    return ModelAliases(SqliteRepository(tmp_path / "store.db"))


def _put(aliases: ModelAliases, alias: str, model: str, reassign: bool = False, deployed: dict | None = None) -> None:
    deployed = deployed or {}

    def deployments_of(model_id: str) -> Sequence[Any]:
        return [_Deployment(s) for s in deployed.get(model_id, [])]

    aliases.put(alias, model, reassign, MODELS.get, deployments_of)


def _reason(exc: pytest.ExceptionInfo) -> tuple[int, str]:
    return exc.value.status, exc.value.reason


def test_put_resolve_reassign_delete_and_persist(tmp_path: Path) -> None:
    aliases = _aliases(tmp_path)
    _put(aliases, "current", "a")
    assert aliases.model_of("current") == "a" and aliases.aliases_of("a") == ["current"]
    assert aliases.expand("current,b") == "a,b"
    with pytest.raises(ElasticsearchError) as e:
        _put(aliases, "current", "b")
    assert _reason(e) == (
        400,
        (
            "cannot assign model_alias [current] to model_id [b] as model_alias already refers to [a]. "
            "Set parameter [reassign] to [true] if model_alias should be reassigned."
        ),
    )
    _put(aliases, "current", "b", reassign=True)
    assert _aliases(tmp_path).model_of("current") == "b"  # in the store, read again
    with pytest.raises(ElasticsearchError) as e:
        aliases.delete("current", "a")
    assert _reason(e) == (409, "model_alias [current] does not refer to provided model_id [a]")
    aliases.delete("current", "b")
    with pytest.raises(ElasticsearchError) as e:
        aliases.delete("current", "b")
    assert _reason(e) == (404, "model_alias [current] could not be found")


def test_request_validation(tmp_path: Path) -> None:
    with pytest.raises(ActionRequestValidationException) as e:
        _put(_aliases(tmp_path), "ends-with-1", "ends-with-1")
    assert e.value.reason == (
        "Validation Failed: 1: model_alias [ends-with-1] cannot equal model_id [ends-with-1];"
        "2: Invalid model_alias; 'ends-with-1' can contain lowercase alphanumeric (a-z and 0-9), hyphens or "
        "underscores; must start with alphanumeric and cannot end with numbers;"
    )


def test_model_checks(tmp_path: Path) -> None:
    aliases = _aliases(tmp_path)
    with pytest.raises(ResourceNotFoundException, match=r"Could not find trained model \[nope\]"):
        _put(aliases, "x", "nope")
    with pytest.raises(ElasticsearchError, match="model_alias cannot be the same as an existing trained model_id"):
        _put(aliases, "b", "a")
    _put(aliases, "x", "a")
    with pytest.raises(ElasticsearchError) as e:
        _put(aliases, "x", "c", reassign=True)
    assert _reason(e) == (
        400,
        (
            "cannot reassign model_alias [x] to model [c] with inference config type [text_expansion] from model [a] "
            "with type [pass_through]"
        ),
    )


def test_a_deployed_model_alias_moves_only_to_a_deployed_model(tmp_path: Path) -> None:
    aliases = _aliases(tmp_path)
    _put(aliases, "x", "a")
    with pytest.raises(ElasticsearchError) as e:
        _put(aliases, "x", "b", reassign=True, deployed={"a": [DeploymentState.STARTED]})
    assert _reason(e) == (400, "cannot reassign model_alias [x] to model [b] from model [a] as it is not yet deployed")
    with pytest.raises(ElasticsearchError, match="as it is not yet allocated to any nodes"):
        _put(aliases, "x", "b", True, {"a": [DeploymentState.STARTED], "b": [DeploymentState.STARTING]})
    _put(aliases, "x", "b", True, {"a": [DeploymentState.STARTED], "b": [DeploymentState.STARTED]})
    assert aliases.model_of("x") == "b"
    aliases.delete_model("b")
    assert aliases.model_of("x") is None
