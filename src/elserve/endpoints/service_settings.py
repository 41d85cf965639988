"""`service_settings` of the `elasticsearch` service (tables T3 and T5).

Sources: `ESS/ElasticsearchInternalServiceSettings.java` (`fromRequestMap`: one
`validation_exception` with every message; `toXContent` key order), and for the
deployment checks `CORE/ml/action/StartTrainedModelDeploymentAction.java` and
`UpdateTrainedModelDeploymentAction.java` (`Request.validate`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from elserve.deployments.validation import start_errors, update_errors
from elserve.endpoints.adaptive import AdaptiveAllocations, remove_adaptive_allocations
from elserve.errors import ActionRequestValidationException, ValidationErrors
from elserve.settings_map import (
    extract_optional_positive_integer,
    extract_optional_string,
    extract_required_positive_integer,
    missing_one_of_message,
)

SCOPE = "service_settings"


@dataclass(frozen=True)
class ServiceSettings:
    """The settings an endpoint of the `elasticsearch` service runs with."""

    num_threads: int
    model_id: str
    num_allocations: int | None = None
    adaptive_allocations: AdaptiveAllocations | None = None
    deployment_id: str | None = None

    def to_dict(self, live_allocations: int | None = None) -> dict[str, Any]:
        """Elasticsearch's echo; `live_allocations` replaces `num_allocations` (what GET shows)."""
        body: dict[str, Any] = {}
        num_allocations = self.num_allocations if live_allocations is None else live_allocations
        if num_allocations is not None:
            body["num_allocations"] = num_allocations
        body["num_threads"] = self.num_threads
        body["model_id"] = self.model_id
        if self.adaptive_allocations is not None:
            body["adaptive_allocations"] = self.adaptive_allocations.to_dict()
        if self.deployment_id is not None:
            body["deployment_id"] = self.deployment_id
        return body

    @classmethod
    def from_persisted(cls, value: Mapping[str, Any]) -> ServiceSettings:
        """Stored settings, trusted. Endpoints from before 8.13 stored `model_version`."""
        adaptive = value.get("adaptive_allocations")
        model_id = value.get("model_id", value.get("model_version"))
        return cls(
            num_threads=int(value.get("num_threads", 1)),
            model_id=str(model_id),
            num_allocations=value.get("num_allocations"),
            adaptive_allocations=None if adaptive is None else AdaptiveAllocations.from_dict(adaptive),
            deployment_id=value.get("deployment_id"),
        )

    def with_allocations(self, num_allocations: int | None, adaptive: AdaptiveAllocations | None) -> ServiceSettings:
        return replace(self, num_allocations=num_allocations, adaptive_allocations=adaptive)


@dataclass(frozen=True)
class RequestedServiceSettings:
    """`service_settings` as read from a request: the model id may still be missing."""

    num_threads: int
    num_allocations: int | None = None
    model_id: str | None = None
    adaptive_allocations: AdaptiveAllocations | None = None
    deployment_id: str | None = None

    def build(self, model_id: str) -> ServiceSettings:
        return ServiceSettings(
            num_threads=self.num_threads,
            model_id=model_id,
            num_allocations=self.num_allocations,
            adaptive_allocations=self.adaptive_allocations,
            deployment_id=self.deployment_id,
        )


def parse_service_settings(settings: MutableMapping[str, Any]) -> RequestedServiceSettings:
    """`fromRequestMap`: pops the known keys from `settings` (leftovers are the caller's to report).

    Raises one `validation_exception` listing every problem, in Elasticsearch's order.
    """
    errors = ValidationErrors()
    num_allocations = extract_optional_positive_integer(settings, "num_allocations", SCOPE, errors)
    num_threads = extract_required_positive_integer(settings, "num_threads", SCOPE, errors)
    adaptive = remove_adaptive_allocations(settings, errors)
    model_id = extract_optional_string(settings, "model_id", SCOPE, errors)
    if num_allocations is None and adaptive is None:
        errors.add(missing_one_of_message(["num_allocations", "adaptive_allocations"], SCOPE))
    deployment_id = extract_optional_string(settings, "deployment_id", SCOPE, errors)
    errors.raise_if_any()
    assert num_threads is not None
    return RequestedServiceSettings(
        num_threads=num_threads,
        num_allocations=num_allocations,
        model_id=model_id,
        adaptive_allocations=adaptive,
        deployment_id=deployment_id,
    )


def check_deployment_start(settings: ServiceSettings) -> None:
    """T5 before anything is stored (elserve's decision 2): 400 `action_request_validation_exception`."""
    errors = start_errors(settings.num_allocations, settings.num_threads, settings.adaptive_allocations)
    if errors:
        raise ActionRequestValidationException(errors)


def check_deployment_update(num_allocations: int | None, adaptive: AdaptiveAllocations | None) -> None:
    """What the deployment `_update` an endpoint update sends would refuse."""
    errors = update_errors(num_allocations, adaptive)
    if errors:
        raise ActionRequestValidationException(errors)
