"""`GET /_elserve/openapi.json` (an elserve extension): the OpenAPI description of every route."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import require
from elserve.api.openapi import openapi_document
from elserve.api.rendering import render
from elserve.security.privileges import CLUSTER_MONITOR

router = APIRouter()


@router.get("/_elserve/openapi.json", dependencies=[Depends(require(CLUSTER_MONITOR))])
async def openapi(request: Request) -> Response:
    app = request.app
    document = getattr(app.state, "openapi_document", None)
    if document is None:
        document = app.state.openapi_document = openapi_document(app)
    return render(request, document)
