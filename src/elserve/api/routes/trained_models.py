"""`/_ml/trained_models`: models, their deployments, and statistics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.params import parse_bool, parse_int
from elserve.api.rendering import render
from elserve.api.views.trained_models import stats_entry
from elserve.api.deps import require
from elserve.security.privileges import ML_STATS

router = APIRouter(prefix="/_ml/trained_models")

_stats = [Depends(require(ML_STATS, frozenset({"allow_no_match", "from", "size"})))]


@router.get("/_stats", dependencies=_stats)
@router.get("/{model_id}/_stats", dependencies=_stats)
def stats(request: Request, model_id: str | None = None) -> Response:
    services = request.app.state.services
    q = request.query_params
    count, entries = services.trained_models.stats(
        model_id,
        allow_no_match=parse_bool(q.get("allow_no_match"), True),
        from_=parse_int(q.get("from"), "from", 0),
        size=parse_int(q.get("size"), "size", 100),
    )
    body = {
        "count": count,
        "trained_model_stats": [
            stats_entry(e.model_id, e.model_bytes, e.deployment, services.node) for e in entries
        ],
    }
    return render(request, body)
