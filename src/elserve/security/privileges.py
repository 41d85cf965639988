"""Which cluster privileges grant which action, and the 403 Elasticsearch answers otherwise.

Action names and the privileges that grant them come from Elasticsearch's
`ClusterPrivilegeResolver.java`; the lists are ordered as Elasticsearch prints
them in the denial message (fewest implied privileges first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from elserve.errors import SecurityException

INFERENCE_PUT = "cluster:admin/xpack/inference/put"
INFERENCE_UPDATE = "cluster:admin/xpack/inference/update"
INFERENCE_DELETE = "cluster:admin/xpack/inference/delete"
INFERENCE_GET = "cluster:monitor/xpack/inference/get"
INFERENCE_POST = "cluster:monitor/xpack/inference"
ML_STATS = "cluster:monitor/xpack/ml/inference/stats/get"
ML_GET = "cluster:monitor/xpack/ml/inference/get"
ML_START = "cluster:admin/xpack/ml/trained_models/deployment/start"
ML_STOP = "cluster:admin/xpack/ml/trained_models/deployment/stop"
ML_UPDATE = "cluster:admin/xpack/ml/trained_models/deployment/update"
ML_PUT_MODEL = "cluster:admin/xpack/ml/inference/put"
CLUSTER_MONITOR = "cluster:monitor/main"
PROMETHEUS_METRICS = "cluster:monitor/prometheus/metrics"

GRANTED_BY: dict[str, tuple[str, ...]] = {
    INFERENCE_PUT: ("manage_inference", "manage", "all"),
    INFERENCE_UPDATE: ("manage_inference", "manage", "all"),
    INFERENCE_DELETE: ("manage_inference", "manage", "all"),
    INFERENCE_GET: ("monitor_inference", "manage_inference", "monitor", "manage", "all"),
    INFERENCE_POST: ("monitor_inference", "manage_inference", "monitor", "manage", "all"),
    ML_STATS: ("monitor_ml", "manage_ml", "monitor", "manage", "all"),
    ML_GET: ("monitor_ml", "manage_ml", "monitor", "manage", "all"),
    ML_START: ("manage_inference", "manage_ml", "manage", "all"),
    ML_STOP: ("manage_inference", "manage_ml", "manage", "all"),
    ML_UPDATE: ("manage_ml", "manage", "all"),
    ML_PUT_MODEL: ("manage_ml", "manage", "all"),
    CLUSTER_MONITOR: ("monitor", "manage", "all"),
    # elserve extension: Prometheus scraping is a monitoring read.
    PROMETHEUS_METRICS: ("monitor", "manage", "all"),
}

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "superuser": frozenset({"all"}),
    "inference_admin": frozenset({"manage_inference"}),
    "inference_user": frozenset({"monitor_inference"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user and the cluster privileges of their roles."""

    username: str
    roles: tuple[str, ...]
    cluster_privileges: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_user(cls, username: str, roles: tuple[str, ...]) -> Principal:
        privileges = frozenset().union(*(BUILTIN_ROLES.get(r, frozenset()) for r in roles))
        return cls(username, roles, privileges)


def authorize(principal: Principal, action: str) -> None:
    """Raise Elasticsearch's 403 unless one of the principal's privileges grants `action`."""
    granting = GRANTED_BY[action]
    if principal.cluster_privileges.intersection(granting):
        return
    roles = ",".join(sorted(principal.roles))
    raise SecurityException(
        f"action [{action}] is unauthorized for user [{principal.username}] with effective roles "
        f"[{roles}], this action is granted by the cluster privileges [{','.join(granting)}]",
        status=403,
    )
