"""Cluster privileges: which action patterns each grants, and which privileges grant an action.

One table, `CLUSTER_PRIVILEGES`, holds each named privilege's action patterns as
Elasticsearch's `ClusterPrivilegeResolver.java` defines them, in the order that
file sorts them for the denial message (fewest implied privileges first, ties
alphabetical). Everything else (a role's check, the "granted by" list of a 403)
is derived from it, so an action's privileges are written down once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# -- the actions elserve serves (Elasticsearch's transport action names) ----------------------

INFERENCE_PUT = "cluster:admin/xpack/inference/put"
INFERENCE_UPDATE = "cluster:admin/xpack/inference/update"
INFERENCE_DELETE = "cluster:admin/xpack/inference/delete"
INFERENCE_GET = "cluster:monitor/xpack/inference/get"
INFERENCE_POST = "cluster:monitor/xpack/inference"
INFERENCE_SERVICES_GET = "cluster:monitor/xpack/inference/services/get"
ML_STATS = "cluster:monitor/xpack/ml/inference/stats/get"
ML_GET = "cluster:monitor/xpack/ml/inference/get"
ML_INFER = "cluster:monitor/xpack/ml/inference/infer"  # InferModelAction.EXTERNAL_NAME
ML_START = "cluster:admin/xpack/ml/trained_models/deployment/start"
ML_STOP = "cluster:admin/xpack/ml/trained_models/deployment/stop"
ML_UPDATE = "cluster:admin/xpack/ml/trained_models/deployment/update"
ML_PUT_MODEL = "cluster:admin/xpack/ml/inference/put"
ML_PUT_MODEL_PART = "cluster:admin/xpack/ml/trained_models/part/put"
ML_PUT_MODEL_VOCABULARY = "cluster:admin/xpack/ml/trained_models/vocabulary/put"
ML_DELETE_MODEL = "cluster:admin/xpack/ml/inference/delete"
ML_PUT_MODEL_ALIAS = "cluster:admin/xpack/ml/inference/model_aliases/put"  # PutTrainedModelAliasAction.NAME
ML_DELETE_MODEL_ALIAS = "cluster:admin/xpack/ml/inference/model_aliases/delete"  # DeleteTrainedModelAliasAction.NAME
ML_CLEAR_CACHE = "cluster:admin/xpack/ml/trained_models/deployment/clear_cache"  # ClearDeploymentCacheAction.NAME
CLUSTER_MONITOR = "cluster:monitor/main"
# elserve extension: Prometheus scraping is a monitoring read.
PROMETHEUS_METRICS = "cluster:monitor/prometheus/metrics"
# elserve's recent server-side errors (`GET /_elserve/errors`): what `monitor_inference` reads.
RECENT_ERRORS = "cluster:monitor/xpack/inference/elserve/errors"

USER_PUT = "cluster:admin/xpack/security/user/put"
USER_GET = "cluster:admin/xpack/security/user/get"
USER_DELETE = "cluster:admin/xpack/security/user/delete"
USER_CHANGE_PASSWORD = "cluster:admin/xpack/security/user/change_password"
USER_SET_ENABLED = "cluster:admin/xpack/security/user/set_enabled"
USER_AUTHENTICATE = "cluster:admin/xpack/security/user/authenticate"
ROLE_PUT = "cluster:admin/xpack/security/role/put"
ROLE_GET = "cluster:admin/xpack/security/role/get"
ROLE_DELETE = "cluster:admin/xpack/security/role/delete"
API_KEY_CREATE = "cluster:admin/xpack/security/api_key/create"
API_KEY_GET = "cluster:admin/xpack/security/api_key/get"
API_KEY_INVALIDATE = "cluster:admin/xpack/security/api_key/invalidate"

# Actions every authenticated user may run on their own account (RBACEngine's same-user check).
SAME_USER_ACTIONS = frozenset({USER_AUTHENTICATE, USER_CHANGE_PASSWORD})

# -- the privileges ---------------------------------------------------------------------------

_ALL_CLUSTER = ("cluster:*", "indices:admin/template/*", "indices:admin/index_template/*")
_SECURITY = "cluster:admin/xpack/security/*"

# name -> (granted patterns, excluded patterns), in Elasticsearch's access-level order.
CLUSTER_PRIVILEGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "none": ((), ()),
    "manage_own_api_key": (("cluster:admin/xpack/security/api_key/*",), ()),  # own keys only (see `grants`)
    "monitor_inference": (
        ("cluster:monitor/xpack/inference*", "cluster:monitor/xpack/ml/trained_models/deployment/infer"),
        (),
    ),
    "monitor_ml": (("cluster:monitor/xpack/ml/*",), ()),
    "read_security": (
        (
            "cluster:admin/xpack/security/api_key/get",
            "cluster:admin/xpack/security/api_key/query",
            "cluster:admin/xpack/security/privilege/get",
            "cluster:admin/xpack/security/privilege/builtin/get",
            "cluster:admin/xpack/security/role/get",
            "cluster:admin/xpack/security/role_mapping/get",
            "cluster:admin/xpack/security/user/get",
            "cluster:admin/xpack/security/user/list_privileges",
            "cluster:admin/xpack/security/user/has_privileges",
        ),
        (),
    ),
    "manage_api_key": (("cluster:admin/xpack/security/api_key/*",), ()),
    "manage_inference": (
        (
            "cluster:admin/xpack/inference/*",
            "cluster:monitor/xpack/inference*",
            "cluster:admin/xpack/ml/trained_models/deployment/start",
            "cluster:admin/xpack/ml/trained_models/deployment/stop",
            "cluster:monitor/xpack/ml/trained_models/deployment/infer",
        ),
        (),
    ),
    "manage_ml": (("cluster:admin/xpack/ml/*", "cluster:monitor/xpack/ml/*"), ()),
    "monitor": (("cluster:monitor/*",), ()),
    "manage_security": ((_SECURITY, "cluster:admin/xpack/security/delegate_pki"), ()),
    "manage": (_ALL_CLUSTER, (_SECURITY,)),
    "all": (_ALL_CLUSTER, ()),
}

# Elasticsearch's other cluster privilege names: valid in a role, granting nothing elserve serves.
OTHER_CLUSTER_PRIVILEGES = frozenset(
    {
        "cancel_task", "create_snapshot", "cross_cluster_replication", "cross_cluster_search", "delegate_pki",
        "grant_api_key", "manage_autoscaling", "manage_behavioral_analytics", "manage_ccr",
        "manage_data_frame_transforms", "manage_data_stream_global_retention", "manage_enrich", "manage_esql",
        "manage_ilm", "manage_index_templates", "manage_ingest_pipelines", "manage_logstash_pipelines",
        "manage_oidc", "manage_pipeline", "manage_rollup", "manage_saml", "manage_search_application",
        "manage_search_query_rules", "manage_search_synonyms", "manage_service_account", "manage_slm",
        "manage_token", "manage_transform", "manage_user_profile", "manage_watcher",
        "monitor_data_frame_transforms", "monitor_data_stream_global_retention", "monitor_enrich", "monitor_esql",
        "monitor_rollup", "monitor_snapshot", "monitor_stats", "monitor_text_structure", "monitor_transform",
        "monitor_watcher", "post_behavioral_analytics_event", "read_ccr", "read_connector_secrets",
        "read_fleet_secrets", "read_ilm", "read_pipeline", "read_slm", "transport_client",
        "write_connector_secrets", "write_fleet_secrets",
    }
)  # fmt: skip

_OWN_API_KEY = "manage_own_api_key"


def _glob(pattern: str) -> str:
    """Elasticsearch's `Automatons` wildcards: `*` any run, `?` one character."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


@lru_cache(maxsize=256)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(_glob(p) for p in patterns)) if patterns else None


def _matches(patterns: tuple[str, ...], action: str) -> bool:
    matcher = _matcher(patterns)
    return matcher is not None and matcher.fullmatch(action) is not None


def is_cluster_action(name: str) -> bool:
    """A raw action pattern is itself a valid cluster privilege (it grants `name*`)."""
    return _matches(_ALL_CLUSTER, name)


def is_valid_cluster_privilege(name: str) -> bool:
    name = name.lower()
    return name in CLUSTER_PRIVILEGES or name in OTHER_CLUSTER_PRIVILEGES or is_cluster_action(name)


def unknown_privilege_message(name: str) -> str:
    names = ",".join([*CLUSTER_PRIVILEGES, *sorted(OTHER_CLUSTER_PRIVILEGES)])
    return (
        f"unknown cluster privilege [{name.lower()}]. a privilege must be either one of the predefined cluster "
        f"privilege names [{names}] or a pattern over one of the available cluster actions"
    )


def grants(privilege: str, action: str, own_api_key: bool = False) -> bool:
    """Does this cluster privilege (a name or an action pattern) grant `action`?

    `own_api_key`: the request only touches the caller's own API keys, which
    `manage_own_api_key` covers (Elasticsearch's `ManageOwnApiKeyClusterPrivilege`)."""
    privilege = privilege.lower()
    if privilege == _OWN_API_KEY and not own_api_key:
        return False
    if privilege in CLUSTER_PRIVILEGES:
        granted, excluded = CLUSTER_PRIVILEGES[privilege]
        return _matches(granted, action) and not _matches(excluded, action)
    return is_cluster_action(privilege) and _matches((privilege + "*",), action)


def any_grants(privileges: Iterable[str], action: str, own_api_key: bool = False) -> bool:
    return any(grants(p, action, own_api_key) for p in privileges)


def granted_by(action: str, own_api_key: bool = False) -> list[str]:
    """The named privileges that grant `action`, as the 403 lists them."""
    return [name for name in CLUSTER_PRIVILEGES if grants(name, action, own_api_key)]
