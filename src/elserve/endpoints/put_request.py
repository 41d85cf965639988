"""`PUT /_inference/[{task_type}/]{inference_id}`: from path and body to an endpoint, every rule first.

Order (`INF/rest/RestPutInferenceModelAction.java`,
`CORE/inference/action/PutInferenceModelAction.java`,
`INF/action/TransportPutInferenceModelAction.java`): the path task type, the id
(T1), reserved ids, the task type (T2), the service, ids taken by trained
models, then the service's own rules (T2-T6), and, unlike Elasticsearch, the
deployment checks (T5) before anything is stored (elserve's decision 2).

The caller then checks "already exists", stores, and starts the deployment. An
endpoint on an existing deployment (`deployment_id`) needs that deployment:
`PutRequest.with_deployment(...)` copies its settings in as Elasticsearch does,
`PutRequest.deployment_not_found()` is the error when there is none.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.endpoints.elasticsearch_service import SERVICE_NAMES, PendingDeployment, parse_request_config
from elserve.endpoints.endpoint import Endpoint
from elserve.endpoints.ids import check_not_reserved, check_not_taken_by_model, validate_inference_id
from elserve.endpoints.service_settings import ServiceSettings, check_deployment_start
from elserve.endpoints.task_types import TaskType, parse_path_task_type, parse_task_type
from elserve.errors import ElasticsearchError, StatusException
from elserve.models.catalogue import platform_default_elser_model
from elserve.settings_map import cast_string


@dataclass(frozen=True)
class PutRequest:
    """A validated PUT: the endpoint to store (or the deployment to attach to) and the `Warning` texts."""

    inference_id: str
    task_type: TaskType
    endpoint: Endpoint | None
    pending: PendingDeployment | None = None
    warnings: tuple[str, ...] = ()

    @property
    def deployment_id(self) -> str | None:
        """The existing deployment the request attaches to (None: the endpoint starts its own)."""
        return None if self.pending is None else self.pending.deployment_id

    def with_deployment(
        self,
        num_allocations: int | None,
        num_threads: int,
        adaptive_allocations: AdaptiveAllocations | None,
        model_id: str,
    ) -> Endpoint:
        """The endpoint on the existing deployment, with the deployment's settings (live values)."""
        if self.pending is None:
            raise ValueError("this request does not attach to an existing deployment")
        requested = self.pending.requested_model_id
        if requested is not None and requested != model_id:
            raise StatusException(
                f"Deployment [{self.pending.deployment_id}] uses model [{model_id}] "
                f"which does not match the model [{requested}] in the request.",
                400,
            )
        settings = ServiceSettings(
            num_threads=num_threads,
            model_id=model_id,
            num_allocations=num_allocations,
            adaptive_allocations=adaptive_allocations,
            deployment_id=self.pending.deployment_id,
        )
        return Endpoint(self.inference_id, self.task_type, settings, self.pending.chunking_settings)

    def deployment_not_found(self) -> ElasticsearchError:
        return StatusException(f"Cannot find deployment [{self.deployment_id}]", 404)


def resolve_task_type(path_task_type: TaskType, body_task_type: Any) -> TaskType:
    """`ServiceUtils.resolveTaskType` on the PUT body's raw `task_type` (the conflict names it as sent)."""
    body_text = cast_string(body_task_type)
    if body_text is None:
        if path_task_type is TaskType.ANY:
            raise StatusException("model is missing required setting [task_type]", 400)
        return path_task_type
    parsed = parse_task_type(body_text)
    if parsed is TaskType.ANY:
        raise StatusException("task_type [any] is not valid type for inference", 400)
    if not parsed.is_any_or_same(path_task_type):
        raise StatusException(
            "Cannot resolve conflicting task_type parameter in the request URL "
            f"[{path_task_type}] and the request body [{body_text}]",
            400,
        )
    return parsed


def parse_put_request(
    inference_id: str,
    path_task_type: str | None,
    body: Mapping[str, Any],
    *,
    trained_model_ids: Collection[str] = (),
    platform_default: str | None = None,
    known_models: Collection[str] = (),
) -> PutRequest:
    """Every rule of a PUT body, in Elasticsearch's order; raises the first failure.

    `trained_model_ids`: ids of trained models and deployments that exist (an
    endpoint id may not take one). `platform_default`: the platform's ELSER id
    (default: the catalogue's). `known_models`: non-ELSER models the caller can serve.
    """
    url_task_type = parse_path_task_type(path_task_type)
    validate_inference_id(inference_id)
    check_not_reserved(inference_id)
    # A body that is not an object reads as an empty map (XContentParser.map()).
    config = dict(body) if isinstance(body, Mapping) else {}
    parsed_keys = len(config)
    task_type = resolve_task_type(url_task_type, config.pop("task_type", None))
    service = cast_string(config.get("service"))
    if service is None:
        raise StatusException("Inference endpoint configuration is missing the [service] setting", 400)
    if service not in SERVICE_NAMES:
        raise StatusException(f"Unknown service [{service}]", 400)
    check_not_taken_by_model(inference_id, trained_model_ids)
    default_model = platform_default_elser_model() if platform_default is None else platform_default
    parsed = parse_request_config(
        inference_id,
        task_type,
        config,
        parsed_keys=parsed_keys,
        platform_default=default_model,
        known_models=known_models,
    )
    if parsed.endpoint is not None:
        check_deployment_start(parsed.endpoint.service_settings)
    return PutRequest(inference_id, task_type, parsed.endpoint, parsed.pending, parsed.warnings)
