"""`_ml/trained_models` bodies: stats entries and assignments, in Elasticsearch's key order.

Sources: `AssignmentStats.java`, `TrainedModelAssignment.java`, `InferenceStats.java`
(x-pack/plugin/core/.../ml/inference/).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from elserve.api.node import NodeInfo
from elserve.bytesize import byte_size_text
from elserve.deployments.backend import NodeShare, ServedDeployment
from elserve.deployments.states import AllocationState, DeploymentState, RoutingState
from elserve.deployments.stats import DeploymentCounters, now_ms
from elserve.models.catalogue import ModelSpec
from elserve.models.downloads import DownloadState, DownloadStatus
from elserve.models.registry import RegisteredModel
from elserve.operations.deployments import adaptive_allocations
from elserve.operations.inference_cache import cache_bytes


def required_memory(deployment: ServedDeployment | None, memory_per: tuple[int, int]) -> int:
    """What the deployment takes at its target allocations (at least one), from its (per-deployment,
    per-allocation) bytes: measured from its workers when they run, else derived from the model's
    files and this runtime (deployments/memory.py). Elasticsearch's constant (240 MB + 2 x the
    model) says nothing of this server's processes."""
    allocations = 1 if deployment is None else max(1, deployment.config.number_of_allocations)
    per_deployment, per_allocation = memory_per
    return per_deployment + per_allocation * allocations


def _routing_state(deployment: ServedDeployment) -> RoutingState:
    states = {a.state for a in deployment.allocations}
    if deployment.state is DeploymentState.FAILED:
        return RoutingState.FAILED
    if RoutingState.STARTED in states:
        return RoutingState.STARTED
    if deployment.state is DeploymentState.STOPPING:
        return RoutingState.STOPPING
    return RoutingState.STARTING


def _node_stats(deployment: ServedDeployment, node: NodeInfo, share: NodeShare | None = None) -> dict[str, Any]:
    """One `nodes[]` entry: this server's node, or (`share`) one node of a deployment spread over several."""
    state = _routing_state(deployment) if share is None else share.routing_state
    routing: dict[str, Any] = {"routing_state": str(state)}
    if deployment.reason:
        routing["reason"] = deployment.reason
    entry: dict[str, Any] = {"node": node.discovery_node() if share is None else _share_node(share, node)}
    entry["routing_state"] = routing
    if routing["routing_state"] != RoutingState.STARTED:
        entry.update(peak_throughput_per_minute=0, throughput_last_minute=0)
        return entry
    c = deployment.counters if share is None else share.counters
    entry["inference_count"] = c.inference_count
    if c.average_inference_time_ms is not None:
        entry["average_inference_time_ms"] = c.average_inference_time_ms
        computed = c.inference_count - c.cache_hit_count
        if computed:
            entry["average_inference_time_ms_excluding_cache_hits"] = c.total_inference_time_s * 1000 / computed
    entry["inference_cache_hit_count"] = c.cache_hit_count
    if c.last_access_ms is not None:
        entry["last_access"] = c.last_access_ms
    entry["number_of_pending_requests"] = deployment.pending_requests
    for name in ("error_count", "rejected_execution_count", "timeout_count"):
        if getattr(c, name):
            entry[name] = getattr(c, name)
    throughput, average = c.last_minute()
    entry.update(
        start_time=deployment.start_time_ms,
        threads_per_allocation=deployment.config.threads_per_allocation,
        number_of_allocations=deployment.started_allocations if share is None else share.allocations,
        peak_throughput_per_minute=c.peak_throughput_per_minute,
        throughput_last_minute=throughput,
        average_inference_time_ms_last_minute=average,
        inference_cache_hit_count_last_minute=c.cache_hits_last_minute(),
    )
    return entry


def _share_node(share: NodeShare, server: NodeInfo) -> dict[str, Any]:
    """A Ray node as `nodes[].node`: its Ray id, host name and address; the version is this server's."""
    return {
        share.node_id: {
            "name": share.name,
            "ephemeral_id": share.node_id,
            "transport_address": share.address,
            "external_id": share.name,
            "attributes": {},
            "roles": ["ml"],
            "version": server.discovery_node()[server.node_id]["version"],
        }
    }


def _counters(deployment: ServedDeployment) -> DeploymentCounters:
    """The deployment's totals: on Ray with front ends sharing a store, what they all counted (rayserve's
    `cluster_counters`), as Elasticsearch sums its nodes'; else this server's."""
    summed = getattr(deployment, "cluster_counters", None)
    return deployment.counters if summed is None else summed()


def adaptive_dict(deployment: ServedDeployment) -> dict[str, Any] | None:
    """`adaptive_allocations` as Elasticsearch echoes it everywhere (one rule: `AdaptiveAllocations.to_dict`)."""
    adaptive = adaptive_allocations(deployment.config)
    return None if adaptive is None else adaptive.to_dict()


def deployment_stats(deployment: ServedDeployment, node: NodeInfo, model_bytes: int) -> dict[str, Any]:
    config = deployment.config
    out: dict[str, Any] = {
        "deployment_id": config.deployment_id,
        "model_id": config.model_id,
        "threads_per_allocation": config.threads_per_allocation,
        "number_of_allocations": config.number_of_allocations,
    }
    adaptive = adaptive_dict(deployment)
    if adaptive is not None:
        out["adaptive_allocations"] = adaptive
    out["queue_capacity"] = config.queue_capacity
    out["state"] = str(deployment.state)
    reason = deployment.reason or deployment.placement_reason  # a failure, or why allocations are missing
    if reason:
        out["reason"] = reason
    if deployment.state is not DeploymentState.STOPPING:
        count = deployment.started_allocations
        target = config.number_of_allocations
        out["allocation_status"] = {
            "allocation_count": count,
            "target_allocation_count": target,
            "state": str(AllocationState.of(count, target)),
        }
    out["cache_size"] = byte_size_text(cache_bytes(config, model_bytes))
    out["priority"] = config.priority
    out["start_time"] = deployment.start_time_ms
    c = _counters(deployment)
    for name in ("inference_count", "error_count", "rejected_execution_count", "timeout_count"):
        if getattr(c, name):
            out[name] = getattr(c, name)
    out["peak_throughput_per_minute"] = c.peak_throughput_per_minute
    shares = deployment.node_shares()
    if shares is None:
        out["nodes"] = [_node_stats(deployment, node)]
    else:
        out["nodes"] = [_node_stats(deployment, node, share) for share in shares]
    return out


def stats_entry(
    model_id: str,
    model_bytes: int,
    deployment: ServedDeployment | None,
    node: NodeInfo,
    memory_per: tuple[int, int],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model_id": model_id,
        "model_size_stats": {
            "model_size_bytes": model_bytes,
            "required_native_memory_bytes": required_memory(deployment, memory_per),
        },
        "pipeline_count": 0,
    }
    c = _counters(deployment) if deployment is not None else None
    entry["inference_stats"] = {
        "failure_count": c.failures if c else 0,
        "inference_count": c.inference_count if c else 0,
        "cache_miss_count": 0,
        "missing_all_fields_count": 0,
        "timestamp": now_ms(),
    }
    if deployment is not None:
        entry["deployment_stats"] = deployment_stats(deployment, node, model_bytes)
    return entry


def assignment(deployment: ServedDeployment, node: NodeInfo, model_bytes: int) -> dict[str, Any]:
    """`TrainedModelAssignment` as `_start` and `_update` answer it."""
    config = deployment.config
    per_deployment, per_allocation = deployment.memory_per()
    routing: dict[str, Any] = {
        "current_allocations": deployment.started_allocations,
        "target_allocations": config.number_of_allocations,
        "routing_state": str(_routing_state(deployment)),
        "reason": deployment.reason or "",
    }
    reason = deployment.reason or deployment.placement_reason
    state = deployment.state if deployment.state is not DeploymentState.FAILED else DeploymentState.STARTING
    return {
        "task_parameters": {
            "model_id": config.model_id,
            "deployment_id": config.deployment_id,
            "model_bytes": model_bytes,
            "threads_per_allocation": config.threads_per_allocation,
            "number_of_allocations": config.number_of_allocations,
            "queue_capacity": config.queue_capacity,
            # `TaskParams.getStringRep()` of the size given at start; else the model's size.
            "cache_size": config.cache_size if config.cache_size is not None else byte_size_text(model_bytes),
            "priority": config.priority,
            "per_deployment_memory_bytes": per_deployment,
            "per_allocation_memory_bytes": per_allocation,
        },
        "routing_table": _routing_table(deployment, node, routing),
        "assignment_state": str(state),
        **({"reason": reason} if reason else {}),
        "start_time": _iso(deployment.start_time_ms),
        "max_assigned_allocations": max(config.number_of_allocations, deployment.started_allocations),
        "adaptive_allocations": adaptive_dict(deployment),
    }


def _routing_table(deployment: ServedDeployment, node: NodeInfo, routing: dict[str, Any]) -> dict[str, Any]:
    """This server's node, or one route per node of a deployment spread over several (Ray)."""
    shares = deployment.node_shares()
    if shares is None:
        return {node.node_id: routing}
    return {
        share.node_id: {
            "current_allocations": share.allocations,
            "target_allocations": share.allocations,
            "routing_state": str(share.routing_state),
            "reason": deployment.reason or "",
        }
        for share in shares
    }


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# Where Elasticsearch keeps native model definitions; clients read these fields, nothing here depends on them.
_NATIVE_INDEX = ".ml-inference-native-000002"


def model_config(spec: ModelSpec, download: DownloadState, model_bytes: int, definition_status: bool) -> dict[str, Any]:
    """One `trained_model_configs` entry (`TrainedModelConfig.toXContent`) for a catalogue model."""
    config: dict[str, Any] = {
        "model_id": spec.model_id,
        "model_type": "pytorch",
        "created_by": "_xpack",
        "version": "12.0.0",
        "create_time": download.started_at or 0,
        "model_size_bytes": model_bytes,
        "estimated_operations": 0,
        "license_level": "platinum",
        "description": spec.description,
        "tags": ["elastic"],
        "metadata": dict(spec.metadata),
        "input": {"field_names": ["text_field"]},
        "inference_config": {
            "text_expansion": {
                "vocabulary": {"index": _NATIVE_INDEX},
                "tokenization": {
                    "bert": {
                        "do_lower_case": True,
                        "with_special_tokens": True,
                        "max_sequence_length": 512,
                        "truncate": "first",
                        "span": -1,
                    }
                },
            }
        },
        "location": {"index": {"name": _NATIVE_INDEX}},
    }
    if definition_status:
        config["fully_defined"] = download.status is DownloadStatus.DOWNLOADED
    return config


def uploaded_model_config(model: RegisteredModel, model_bytes: int, definition_status: bool) -> dict[str, Any]:
    """One `trained_model_configs` entry for an uploaded model: its configuration as stored, with the
    fields Elasticsearch adds (`TrainedModelConfig.toXContent`, `created_by` "api_user" for the REST API)."""
    stored = dict(model.config)
    config: dict[str, Any] = {
        "model_id": model.model_id,
        "model_type": stored.get("model_type", "pytorch"),
        "created_by": "api_user",
        "version": "12.0.0",
        "create_time": model.create_time,
        "model_size_bytes": model_bytes,
        "estimated_operations": 0,
        "license_level": "platinum",
    }
    for name in (
        "description",
        "tags",
        "metadata",
        "input",
        "inference_config",
        "prefix_strings",
        "platform_architecture",
    ):
        if name in stored:
            config[name] = stored[name]
    config.setdefault("tags", [])
    config["location"] = {"index": {"name": _NATIVE_INDEX}}
    if definition_status:
        config["fully_defined"] = model.fully_defined
    return config
