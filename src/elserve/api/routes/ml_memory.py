"""`GET /_ml/memory/_stats`: the node's memory and what ML takes of it (`MlMemoryAction`).

`mem.ml.max` is the limit allocations are placed within (`--ml-memory`);
`native_inference` is measured: the sum of the workers' PSS (their private
pages and their share of the shared ones); `native_code_overhead` is the fork
server's PSS (the runtime the workers share). No JVM here: the `jvm` figures are 0.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import require
from elserve.api.params import parse_bool
from elserve.api.rendering import render
from elserve.bytesize import byte_size_text
from elserve.security.privileges import ML_STATS

router = APIRouter(prefix="/_ml/memory")
_stats = [Depends(require(ML_STATS, frozenset({"master_timeout", "timeout"})))]


def _sizes(human: bool, **fields: int) -> dict[str, Any]:
    """`humanReadableField`: `x_in_bytes`, preceded by `x` as text when `human=true`."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if human:
            out[name] = byte_size_text(value)
        out[f"{name}_in_bytes"] = value
    return out


@router.get("/_stats", dependencies=_stats)
@router.get("/{node_id}/_stats", dependencies=_stats)
async def memory_stats(request: Request, node_id: str | None = None) -> Response:
    services = request.app.state.services
    node = services.node
    human = parse_bool(request.query_params.get("human"), False)
    nodes: dict[str, Any] = {}
    if node.selected_by(node_id):
        overhead, inference = services.deployments.native_memory()
        [discovery] = node.discovery_node().values()
        nodes[node.node_id] = {
            "name": node.name,
            "ephemeral_id": node.ephemeral_id,
            "transport_address": node.transport_address,
            "attributes": {k: v for k, v in discovery["attributes"].items() if k.startswith("ml.")},
            "roles": discovery["roles"],
            "mem": {
                **_sizes(human, total=node.machine_memory, adjusted_total=node.machine_memory),
                "ml": _sizes(
                    human,
                    max=node.ml_memory_limit,
                    native_code_overhead=overhead,
                    anomaly_detectors=0,
                    data_frame_analytics=0,
                    native_inference=inference,
                ),
            },
            "jvm": _sizes(human, heap_max=0, java_inference_max=0, java_inference=0),
        }
    count = len(nodes)
    body = {
        "_nodes": {"total": count, "successful": count, "failed": 0},
        "cluster_name": node.cluster_name,
        "nodes": nodes,
    }
    return render(request, body)
