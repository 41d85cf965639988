"""`GET /_prometheus/metrics` (an elserve extension): Prometheus text exposition, monitor privilege."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from elserve.api.deps import require
from elserve.security.privileges import PROMETHEUS_METRICS

router = APIRouter()


@router.get("/_prometheus/metrics", dependencies=[Depends(require(PROMETHEUS_METRICS))])
async def metrics(request: Request) -> Response:
    return Response(request.app.state.services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
