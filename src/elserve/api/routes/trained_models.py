"""`/_ml/trained_models`: models, their deployments, and statistics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, overload

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.arrival import time_left
from elserve.api.deps import authenticated, check, json_body, require
from elserve.api.json_parsing import large_body_slot
from elserve.api.params import parse_bool, parse_int, parse_page_param
from elserve.api.rendering import render
from elserve.api.views.trained_models import assignment, model_config, stats_entry, uploaded_model_config
from elserve.bytesize import byte_size_rep
from elserve.deployments.backend import ServedDeployment
from elserve.deployments.priority import Priority
from elserve.endpoints import deprecation
from elserve.endpoints.adaptive import remove_adaptive_allocations
from elserve.endpoints.json_location import json_token, top_level_fields
from elserve.errors import (
    ActionRequestValidationException,
    IllegalArgumentException,
    StatusException,
    ValidationErrors,
    ValidationException,
    field_parse_failed,
    unsupported_value_type,
)
from elserve.operations.infer_model_request import parse_infer_model_body
from elserve.operations.model_inference import TrainedModelInference
from elserve.operations.trained_models import ConfigEntry, StartRequest
from elserve.operations.upload_requests import parse_definition_part, parse_vocabulary
from elserve.security.authz import Principal
from elserve.security.privileges import (
    ML_CLEAR_CACHE,
    ML_DELETE_MODEL,
    ML_DELETE_MODEL_ALIAS,
    ML_GET,
    ML_INFER,
    ML_PUT_MODEL,
    ML_PUT_MODEL_ALIAS,
    ML_PUT_MODEL_PART,
    ML_PUT_MODEL_VOCABULARY,
    ML_START,
    ML_STATS,
    ML_STOP,
    ML_UPDATE,
)
from elserve.timevalue import parse_time

router = APIRouter(prefix="/_ml/trained_models")

_stats = [Depends(require(ML_STATS, frozenset({"allow_no_match", "from", "size"})))]
_START_PARAMS = frozenset(
    {
        "deployment_id",
        "number_of_allocations",
        "threads_per_allocation",
        "priority",
        "queue_capacity",
        "cache_size",
        "wait_for",
        "timeout",
    }
)
_start = [Depends(require(ML_START, _START_PARAMS))]
_update = [Depends(require(ML_UPDATE, frozenset({"timeout", "master_timeout", "number_of_allocations"})))]
_stop = [Depends(require(ML_STOP, frozenset({"allow_no_match", "force", "finish_pending_work"})))]


def _render_assignment(request: Request, deployment: ServedDeployment) -> Response:
    services = request.app.state.services
    model_bytes = services.trained_models.model_bytes(deployment.model_id)
    return render(request, {"assignment": assignment(deployment, services.node, model_bytes)})


_get = [
    Depends(
        require(
            ML_GET,
            frozenset(
                {"allow_no_match", "from", "size", "tags", "exclude_generated", "decompress_definition", "include"}
            ),
        )
    )
]
_put_model = [Depends(require(ML_PUT_MODEL, frozenset({"defer_definition_decompression", "wait_for_completion"})))]
_put_part = [Depends(require(ML_PUT_MODEL_PART, frozenset()))]
_put_vocabulary = [Depends(require(ML_PUT_MODEL_VOCABULARY, frozenset()))]
_delete_model = [Depends(require(ML_DELETE_MODEL, frozenset({"force", "timeout"})))]


def _render_config(entry: ConfigEntry, definition_status: bool) -> dict[str, Any]:
    if entry.uploaded is not None:
        return uploaded_model_config(entry.uploaded, entry.model_bytes, definition_status)
    assert entry.spec is not None
    return model_config(entry.spec, entry.download, entry.model_bytes, definition_status)


def _with_aliases(services: Any, config: dict[str, Any]) -> dict[str, Any]:
    """A model's aliases, sorted, as `metadata.model_aliases` (`TrainedModelConfig.Builder.setModelAliases`)."""
    aliases = services.trained_models.aliases.aliases_of(config["model_id"])
    if aliases:
        config["metadata"] = {**(config.get("metadata") or {}), "model_aliases": aliases}
    return config


@router.get("/_stats", dependencies=_stats)
@router.get("/{model_id}/_stats", dependencies=_stats)
async def stats(request: Request, model_id: str | None = None) -> Response:
    services = request.app.state.services
    q = request.query_params
    count, entries = services.trained_models.stats(
        model_id,
        allow_no_match=parse_bool(q.get("allow_no_match"), True),
        from_=parse_page_param(q.get("from"), "from", 0),
        size=parse_page_param(q.get("size"), "size", 100),
    )
    body = {
        "count": count,
        "trained_model_stats": [
            stats_entry(e.model_id, e.model_bytes, e.deployment, services.node, e.memory_per)
            # elserve's addition: a download running or failed (its reason), as `download`
            | ({"download": report} if (report := services.downloads.report(e.model_id)) else {})
            # elserve's addition: an upload being checked, or refused by its check (its reason), as `upload`
            | ({"upload": upload} if (upload := services.trained_models.uploads.report(e.model_id)) else {})
            for e in entries
        ],
    }
    return render(request, body)


@router.get("", dependencies=_get)
@router.get("/{model_id}", dependencies=_get)
async def get(request: Request, model_id: str | None = None) -> Response:
    services = request.app.state.services
    q = request.query_params
    definition_status = "definition_status" in (q.get("include") or "").split(",")
    found = services.trained_models.configs(
        model_id,
        allow_no_match=parse_bool(q.get("allow_no_match"), True),
        from_=parse_page_param(q.get("from"), "from", 0),
        size=parse_page_param(q.get("size"), "size", 100),
    )
    configs = [_with_aliases(services, _render_config(entry, definition_status)) for entry in found]
    return render(request, {"count": len(configs), "trained_model_configs": configs})


@router.put("/{model_id}", dependencies=_put_model)
async def put_model(request: Request, model_id: str) -> Response:
    body = await json_body(request)
    # In a thread: registering an upload waits for the uploads' lock, which part writes hold.
    entry = await asyncio.to_thread(
        request.app.state.services.trained_models.put_model, model_id, body, await request.body()
    )
    return render(request, _render_config(entry, definition_status=False))


@router.put("/{model_id}/definition/{part}", dependencies=_put_part)
async def put_definition_part(request: Request, model_id: str, part: str) -> Response:
    number = parse_int(part, "part", -1)
    upload = parse_definition_part(await json_body(request) or {})
    await asyncio.to_thread(
        request.app.state.services.trained_models.uploads.put_part,
        model_id,
        number,
        upload.definition,
        upload.total_definition_length,
        upload.total_parts,
    )
    return render(request, {"acknowledged": True})


@router.put("/{model_id}/vocabulary", dependencies=_put_vocabulary)
async def put_vocabulary(request: Request, model_id: str) -> Response:
    uploads = request.app.state.services.trained_models.uploads
    # A vocabulary may hold millions of strings: read and checked off the event loop, and its objects
    # counted among the large bodies' until it is written.
    async with large_body_slot(await request.body()):
        body = await json_body(request) or {}

        def put() -> None:
            vocabulary = parse_vocabulary(body)
            uploads.put_vocabulary(model_id, vocabulary.vocabulary, vocabulary.merges, vocabulary.scores)

        await asyncio.to_thread(put)
    return render(request, {"acknowledged": True})


@router.delete("/{model_id}", dependencies=_delete_model)
async def delete_model(request: Request, model_id: str) -> Response:
    force = parse_bool(request.query_params.get("force"), False)
    await request.app.state.services.trained_models.delete(model_id, force)
    return render(request, {"acknowledged": True})


def _option(body: dict[str, Any], request: Request, name: str) -> Any:
    """A start option: the query parameter wins over the body, as in Elasticsearch's REST action."""
    if name in request.query_params:
        return request.query_params[name]
    return body.get(name)


@overload
def _int_option(body: dict[str, Any], request: Request, name: str, default: int) -> int: ...
@overload
def _int_option(body: dict[str, Any], request: Request, name: str, default: None) -> int | None: ...
def _int_option(body: dict[str, Any], request: Request, name: str, default: int | None) -> int | None:
    value = _option(body, request, name)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_int(str(value), name, 0)


# `StartTrainedModelDeploymentAction.NAME`: the body parser's name in its errors.
_START_PARSER = "cluster:admin/xpack/ml/trained_models/deployment/start"


async def _priority(body: dict[str, Any], request: Request) -> Priority:
    """`priority` as Elasticsearch reads it: the body first (a parse error names the field), then the query."""
    if "priority" in body:
        value = body["priority"]
        where = top_level_fields(await request.body()).get("priority")
        location = str(where.value.location) if where else ""
        if not isinstance(value, str):
            raise unsupported_value_type(_START_PARSER, "priority", json_token(value), location)
        try:
            body_priority = Priority.parse(value)
        except IllegalArgumentException as exc:
            raise field_parse_failed(_START_PARSER, "priority", location, caused_by=exc) from None
    else:
        body_priority = StartRequest.priority
    if "priority" in request.query_params:
        return Priority.parse(request.query_params["priority"])
    return body_priority


def _cache_size(body: dict[str, Any], request: Request) -> str | None:
    """`cache_size` (`ByteSizeValue.parseBytesSizeValue`), kept as `getStringRep()` shows it."""
    value = _option(body, request, "cache_size")
    if value is None:
        return None
    return byte_size_rep(str(value), "cache_size")[1]


@router.post("/{model_id}/deployment/_start", dependencies=_start)
async def start(request: Request, model_id: str) -> Response:
    body = await json_body(request, required=False) or {}
    errors = ValidationErrors(ActionRequestValidationException)
    adaptive = remove_adaptive_allocations(body, errors)
    errors.raise_if_any()
    start_request = StartRequest(
        model_id=model_id,
        deployment_id=_option(body, request, "deployment_id"),
        number_of_allocations=_int_option(body, request, "number_of_allocations", None),
        threads_per_allocation=_int_option(body, request, "threads_per_allocation", 1),
        queue_capacity=_int_option(body, request, "queue_capacity", StartRequest.queue_capacity),
        priority=await _priority(body, request),
        adaptive_allocations=adaptive,
        wait_for=_option(body, request, "wait_for") or "started",
        cache_size=_cache_size(body, request),
    )
    timeout = parse_time(_option(body, request, "timeout"), "timeout", "30s")
    deployment = await request.app.state.services.trained_models.start(start_request, timeout)
    return _render_assignment(request, deployment)


@router.post("/{deployment_id}/deployment/_update", dependencies=_update)
async def update(request: Request, deployment_id: str) -> Response:
    body = await json_body(request, required=False) or {}
    errors = ValidationErrors(ActionRequestValidationException)
    adaptive = remove_adaptive_allocations(body, errors)
    errors.raise_if_any()
    allocations = _int_option(body, request, "number_of_allocations", None)
    deployment = await request.app.state.services.trained_models.update(deployment_id, allocations, adaptive)
    return _render_assignment(request, deployment)


@router.post("/{deployment_id}/deployment/_stop", dependencies=_stop)
async def stop(request: Request, deployment_id: str) -> Response:
    # Clients send the options in the query (older) or in a body (newer); with a body, only the body counts.
    body = await json_body(request, required=False)
    options = body if body is not None else dict(request.query_params)
    force = parse_bool(_text(options.get("force")), False)
    allow_no_match = parse_bool(_text(options.get("allow_no_match")), True)
    await request.app.state.services.trained_models.stop(deployment_id, force, allow_no_match)
    return render(request, {"stopped": True})


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return "true" if value is True else "false" if value is False else str(value)


# -- inference ------------------------------------------------------------------------------

_INFER_PARAMS = frozenset({"timeout"})
_infer = [Depends(require(ML_INFER, _INFER_PARAMS))]
# `RestInferTrainedModelDeploymentAction`: kept in 9 (`deprecateAndKeep`), every answer warns.
DEPLOYMENT_INFER_DEPRECATION = (
    "[POST /_ml/trained_models/{model_id}/deployment/_infer] is deprecated! "
    "Use [POST /_ml/trained_models/{model_id}/_infer] instead."
)


async def _infer_results(request: Request, model_id: str, single: bool = False) -> list[dict[str, Any]]:
    """`RestInferTrainedModelAction`: a body is required, the URL's `timeout` wins over the body's (10s)."""
    raw = await request.body()
    if not raw:
        raise StatusException("requires body", 400)
    body = await json_body(request)
    assert body is not None
    infer_request = parse_infer_model_body(body, raw)
    if "timeout" in request.query_params:
        timeout = parse_time(request.query_params["timeout"], "timeout", "10s")
    else:
        timeout = infer_request.body_timeout or parse_time(None, "timeout", "10s")
    if single and len(infer_request.docs) > 1:
        raise ValidationException(["multiple documents are not supported"])
    timeout = time_left(request, timeout)  # counted from the request's arrival
    services = request.app.state.services
    models = services.trained_models
    inference = TrainedModelInference(
        services.deployments, models.known_models, models.inference_caches, models.model_bytes, models.aliases.model_of
    )
    deployment = inference.deployment(model_id)
    (entry,) = services.trained_models.configs(deployment.model_id, allow_no_match=False, from_=0, size=1)
    return await inference.infer(deployment, _render_config(entry, definition_status=False), infer_request, timeout)


@router.post("/{model_id}/_infer", dependencies=_infer)
async def infer(request: Request, model_id: str) -> Response:
    return render(request, {"inference_results": await _infer_results(request, model_id)})


@router.post("/{model_id}/deployment/_infer")
async def deployment_infer(
    request: Request, model_id: str, principal: Annotated[Principal, Depends(authenticated(_INFER_PARAMS))]
) -> Response:
    """The older form: one document, its result's fields at the top level (`Response.toXContent`)."""
    deprecation.warn(DEPLOYMENT_INFER_DEPRECATION)  # after authentication, as the REST filter runs first
    check(request, principal, ML_INFER)
    (result,) = await _infer_results(request, model_id, single=True)
    return render(request, result)


_put_alias = [Depends(require(ML_PUT_MODEL_ALIAS, frozenset({"reassign"})))]
_delete_alias = [Depends(require(ML_DELETE_MODEL_ALIAS, frozenset()))]
_clear_cache = [Depends(require(ML_CLEAR_CACHE, frozenset()))]


@router.put("/{model_id}/model_aliases/{model_alias}", dependencies=_put_alias)
async def put_alias(request: Request, model_id: str, model_alias: str) -> Response:
    reassign = parse_bool(request.query_params.get("reassign"), False)
    request.app.state.services.trained_models.put_alias(model_alias, model_id, reassign)
    return render(request, {"acknowledged": True})


@router.delete("/{model_id}/model_aliases/{model_alias}", dependencies=_delete_alias)
async def delete_alias(request: Request, model_id: str, model_alias: str) -> Response:
    request.app.state.services.trained_models.aliases.delete(model_alias, model_id)
    return render(request, {"acknowledged": True})


@router.post("/{deployment_id}/deployment/cache/_clear", dependencies=_clear_cache)
async def clear_cache(request: Request, deployment_id: str) -> Response:
    request.app.state.services.trained_models.clear_cache(deployment_id)
    return render(request, {"cleared": True})
