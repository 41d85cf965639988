"""`_has_privileges`: which of the cluster privileges a caller asks about it holds
(`TransportHasPrivilegesAction`, `HasPrivilegesResponse`).

A requested entry is a raw action (`cluster:admin/xpack/inference/put`), held when the caller may
run it, or a privilege name, held when every pattern it grants is granted to the caller in every
layer (Elasticsearch compares automatons; reading a privilege's patterns as actions gives the same
answer for the privileges elserve serves). Index and application privileges: elserve has no
indices, so only a superuser (`all`) holds them, as it would in Elasticsearch.
"""

from __future__ import annotations

from elserve.errors import IllegalArgumentException
from elserve.security.authz import Principal
from elserve.security.privileges import (
    CLUSTER_PRIVILEGES,
    OTHER_CLUSTER_PRIVILEGES,
    any_grants,
    is_cluster_action,
    unknown_privilege_message,
)


def holds(principal: Principal, requested: str) -> bool:
    """Does `principal` hold the cluster privilege or action `requested`? An unknown name is
    Elasticsearch's 400."""
    name = requested.lower()
    if name in CLUSTER_PRIVILEGES:
        granted, _excluded = CLUSTER_PRIVILEGES[name]
        return all(any_grants(layer, pattern) for layer in principal.layers for pattern in granted)
    if name in OTHER_CLUSTER_PRIVILEGES:
        return all({name, "all"} & {p.lower() for p in layer} for layer in principal.layers)
    if is_cluster_action(requested):
        return principal.allows(requested)
    raise IllegalArgumentException(unknown_privilege_message(requested))


def is_superuser(principal: Principal) -> bool:
    """Holds `all`: every index and application privilege too."""
    return holds(principal, "all")
