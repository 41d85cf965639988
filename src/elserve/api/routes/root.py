"""`GET /` and `HEAD /`: the cluster-info answer clients and tools read."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import require
from elserve.api.rendering import render
from elserve.security.privileges import CLUSTER_MONITOR
from elserve.version import (
    BUILD_DATE,
    BUILD_HASH,
    ES_VERSION,
    LUCENE_VERSION,
    MIN_INDEX_COMPAT,
    MIN_WIRE_COMPAT,
    TAGLINE,
)

router = APIRouter()


@router.get("/", dependencies=[Depends(require(CLUSTER_MONITOR))])
async def info(request: Request) -> Response:
    node = request.app.state.services.node
    return render(
        request,
        {
            "name": node.name,
            "cluster_name": node.cluster_name,
            "cluster_uuid": node.cluster_uuid,
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_type": "tar",
                "build_hash": BUILD_HASH,
                "build_date": BUILD_DATE,
                "build_snapshot": False,
                "lucene_version": LUCENE_VERSION,
                "minimum_wire_compatibility_version": MIN_WIRE_COMPAT,
                "minimum_index_compatibility_version": MIN_INDEX_COMPAT,
            },
            "tagline": TAGLINE,
        },
    )


@router.head("/", dependencies=[Depends(require(CLUSTER_MONITOR))])
async def ping() -> Response:
    return Response(status_code=200, media_type="application/json")
