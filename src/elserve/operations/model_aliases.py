"""Model aliases: `PUT|DELETE /_ml/trained_models/{model_id}/model_aliases/{model_alias}`.

An alias names one model; it is resolved wherever a model id is read (`GET` and `_stats` of trained
models, `_infer`) and listed in the model's `metadata.model_aliases`. The rules are Elasticsearch's
(`CORE/ml/action/PutTrainedModelAliasAction.java` `Request.validate`,
`ML/action/TransportPutTrainedModelAliasAction.java`, `TransportDeleteTrainedModelAliasAction.java`,
`CORE/ml/job/messages/Messages.java` `INVALID_MODEL_ALIAS`). Aliases persist in the store as the
`model_alias` kind: `{alias: {"model_id": ...}}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from elserve.deployments.backend import ServedDeployment
from elserve.deployments.states import DeploymentState
from elserve.errors import ActionRequestValidationException, ResourceNotFoundException, StatusException
from elserve.store import Repository

KIND = "model_alias"
# PutTrainedModelAliasAction.VALID_MODEL_ALIAS_CHAR_PATTERN: no trailing digit, so that an alias
# never looks like one of the automatically numbered model ids.
_VALID_ALIAS = re.compile(r"[a-z0-9](?:[a-z0-9_\-.]*[a-z])?")


def alias_errors(model_alias: str, model_id: str) -> list[str]:
    """`PutTrainedModelAliasAction.Request.validate`."""
    errors = []
    if model_alias == model_id:
        errors.append(f"model_alias [{model_alias}] cannot equal model_id [{model_id}]")
    if not _VALID_ALIAS.fullmatch(model_alias):
        errors.append(
            f"Invalid model_alias; '{model_alias}' can contain lowercase alphanumeric (a-z and 0-9), hyphens or "
            "underscores; must start with alphanumeric and cannot end with numbers"
        )
    return errors


def _task(config: Mapping[str, Any]) -> str | None:
    inference = config.get("inference_config") or {}
    return next(iter(inference), None) if isinstance(inference, Mapping) else None


class ModelAliases:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    def model_of(self, model_alias: str) -> str | None:
        doc = self._repo.get(KIND, model_alias)
        return None if doc is None else str(doc["model_id"])

    def aliases_of(self, model_id: str) -> list[str]:
        return sorted(alias for alias, doc in self._repo.list(KIND) if doc.get("model_id") == model_id)

    def expand(self, expression: str) -> str:
        """An id expression with each alias among its comma-separated ids replaced by its model's id."""
        parts = [p.strip() for p in expression.split(",")]
        return ",".join(self.model_of(p) or p for p in parts)

    def put(
        self,
        model_alias: str,
        model_id: str,
        reassign: bool,
        config_of: Callable[[str], Mapping[str, Any] | None],
        deployments_of: Callable[[str], Sequence[ServedDeployment]],
    ) -> None:
        """`config_of(id)`: the model's configuration (`model_type`, `inference_config`), None when
        it does not exist; `deployments_of(id)`: its deployments."""
        errors = alias_errors(model_alias, model_id)
        if errors:
            raise ActionRequestValidationException(errors)
        old_id = self.model_of(model_alias)
        if old_id is not None and not reassign:
            raise StatusException(
                f"cannot assign model_alias [{model_alias}] to model_id [{model_id}] as model_alias already refers to "
                f"[{old_id}]. Set parameter [reassign] to [true] if model_alias should be reassigned.",
                400,
            )
        if config_of(model_alias) is not None:
            raise StatusException("model_alias cannot be the same as an existing trained model_id", 400)
        new = config_of(model_id)
        if new is None:
            raise ResourceNotFoundException(f"Could not find trained model [{model_id}]")
        old = config_of(old_id) if old_id is not None else None
        if old is not None and old_id is not None:
            self._check_reassign(model_alias, model_id, new, old_id, old, deployments_of)
        self._repo.put(KIND, model_alias, {"model_id": model_id})

    @staticmethod
    def _check_reassign(
        alias: str,
        model_id: str,
        new: Mapping[str, Any],
        old_id: str,
        old: Mapping[str, Any],
        deployments_of: Callable[[str], Sequence[ServedDeployment]],
    ) -> None:
        new_task, old_task = _task(new), _task(old)
        if new_task is not None and old_task is not None and new_task != old_task:
            raise StatusException(
                f"cannot reassign model_alias [{alias}] to model [{model_id}] with inference config type "
                f"[{new_task}] from model [{old_id}] with type [{old_task}]",
                400,
            )
        new_type = new.get("model_type") or "tree_ensemble"
        old_type = old.get("model_type") or "tree_ensemble"
        if new_type != old_type:
            raise StatusException(
                f"cannot reassign model_alias [{alias}] to model [{model_id}] with type [{new_type}] from model "
                f"[{old_id}] with type [{old_type}]",
                400,
            )
        if new_type != "pytorch":
            return
        old_deployments, new_deployments = deployments_of(old_id), deployments_of(model_id)
        if not old_deployments:
            return
        if not new_deployments:
            raise StatusException(
                f"cannot reassign model_alias [{alias}] to model [{model_id}] from model [{old_id}] as it is not yet "
                "deployed",
                400,
            )
        if any(d.state is DeploymentState.STARTED for d in old_deployments) and any(
            d.state is DeploymentState.STARTING for d in new_deployments
        ):
            # (The two spaces are Elasticsearch's.)
            raise StatusException(
                f"cannot reassign model_alias [{alias}] to model [{model_id}]  from model [{old_id}] as it is not "
                "yet allocated to any nodes",
                400,
            )

    def delete(self, model_alias: str, model_id: str) -> None:
        """`TransportDeleteTrainedModelAliasAction.deleteModelAlias`."""
        referenced = self.model_of(model_alias)
        if referenced is None:
            raise StatusException(f"model_alias [{model_alias}] could not be found", 404)
        if referenced != model_id:
            raise StatusException(f"model_alias [{model_alias}] does not refer to provided model_id [{model_id}]", 409)
        self._repo.delete(KIND, model_alias)

    def delete_model(self, model_id: str) -> None:
        """A deleted model's aliases go with it (`TransportDeleteTrainedModelAction.deleteAliasesAndModel`)."""
        for alias in self.aliases_of(model_id):
            self._repo.delete(KIND, alias)
