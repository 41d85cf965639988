"""`/_inference`: Elasticsearch's inference endpoint API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.arrival import time_left
from elserve.api.deps import json_body, require
from elserve.api.params import parse_bool
from elserve.api.rendering import render
from elserve.deployments.lanes import parse_request_priority
from elserve.errors import StatusException
from elserve.operations.inference import InferenceOperations
from elserve.security.privileges import (
    INFERENCE_DELETE,
    INFERENCE_GET,
    INFERENCE_POST,
    INFERENCE_PUT,
    INFERENCE_UPDATE,
)
from elserve.timevalue import parse_time

router = APIRouter(prefix="/_inference")

_put = [Depends(require(INFERENCE_PUT, frozenset({"timeout"})))]
_get = [Depends(require(INFERENCE_GET))]
_delete = [Depends(require(INFERENCE_DELETE, frozenset({"dry_run", "force"})))]
_update = [Depends(require(INFERENCE_UPDATE))]
# `priority` (search | ingest) is elserve's: which lane the request takes (deployments/lanes.py).
_post = [Depends(require(INFERENCE_POST, frozenset({"timeout", "priority"})))]


def _ops(request: Request) -> InferenceOperations:
    return request.app.state.services.inference


# -- update (declared first: `/{id}/_update` must win over `/{task_type}/{id}`) ---------------


@router.put("/{inference_id}/_update", dependencies=_update)
@router.put("/{task_type}/{inference_id}/_update", dependencies=_update)
async def update(request: Request, inference_id: str, task_type: str | None = None) -> Response:
    body = await json_body(request, required=False)
    return render(request, await _ops(request).update(inference_id, task_type, body))


@router.post("/{task_type}/{inference_id}/_stream", dependencies=_post)
async def stream(request: Request, inference_id: str, task_type: str) -> Response:
    _ops(request).find(inference_id)
    raise StatusException("Streaming is not allowed for service [elasticsearch].", 405)


# -- create ---------------------------------------------------------------------------------


@router.put("/{inference_id}", dependencies=_put)
@router.put("/{task_type}/{inference_id}", dependencies=_put)
async def put(request: Request, inference_id: str, task_type: str | None = None) -> Response:
    timeout = parse_time(request.query_params.get("timeout"), "timeout", "30s")
    body = await json_body(request)
    # Its deprecation warnings (the `elser` alias) are on the answer whatever it is (api/deprecation_headers.py).
    endpoint, _ = await _ops(request).put(inference_id, task_type, body, timeout)
    return render(request, endpoint)


# -- read -----------------------------------------------------------------------------------


@router.get("", dependencies=_get)
@router.get("/{inference_id}", dependencies=_get)
@router.get("/{task_type}/{inference_id}", dependencies=_get)
async def get(request: Request, inference_id: str | None = None, task_type: str | None = None) -> Response:
    return render(request, _ops(request).get(inference_id, task_type))


# -- delete ---------------------------------------------------------------------------------


@router.delete("/{inference_id}", dependencies=_delete)
@router.delete("/{task_type}/{inference_id}", dependencies=_delete)
async def delete(request: Request, inference_id: str, task_type: str | None = None) -> Response:
    dry_run = parse_bool(request.query_params.get("dry_run"), False)
    force = parse_bool(request.query_params.get("force"), False)
    return render(request, await _ops(request).delete(inference_id, task_type, dry_run, force))


# -- infer ----------------------------------------------------------------------------------


@router.post("/{inference_id}", dependencies=_post)
@router.post("/{task_type}/{inference_id}", dependencies=_post)
async def infer(request: Request, inference_id: str, task_type: str | None = None) -> Response:
    timeout = parse_time(request.query_params.get("timeout"), "timeout", "30s")
    priority = parse_request_priority(request.query_params.get("priority"))
    body = await json_body(request)
    timeout = time_left(request, timeout)  # counted from the request's arrival
    source = await request.body()  # for Elasticsearch's [line:column] in parse errors
    return render(request, await _ops(request).infer(inference_id, task_type, body, timeout, source, priority))
