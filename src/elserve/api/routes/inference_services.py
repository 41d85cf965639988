"""`GET /_inference/_services[/{task_type}]`: the services and the settings their endpoints take.

Mounted before `/_inference`'s routes: `_services` is not an endpoint id
(`RestGetInferenceServicesAction`; the task type is parsed as any task type, `any` lists all).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import require
from elserve.api.rendering import render
from elserve.endpoints.service_configuration import service_configurations
from elserve.endpoints.task_types import parse_path_task_type
from elserve.security.privileges import INFERENCE_SERVICES_GET

router = APIRouter(prefix="/_inference/_services")

_get = [Depends(require(INFERENCE_SERVICES_GET))]


@router.get("", dependencies=_get)
@router.get("/{task_type}", dependencies=_get)
async def services(request: Request, task_type: str | None = None) -> Response:
    return render(request, service_configurations(parse_path_task_type(task_type)))
