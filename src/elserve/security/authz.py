"""Who is calling (`Principal`), what they may do, and the 403 Elasticsearch answers otherwise
(`AuthorizationDenialMessages.java`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from elserve.errors import SecurityException
from elserve.security.privileges import SAME_USER_ACTIONS, USER_AUTHENTICATE, any_grants, granted_by


@dataclass(frozen=True)
class Realm:
    name: str
    type: str


NATIVE = Realm("default_native", "native")
RESERVED = Realm("reserved", "reserved")
API_KEY_REALM = Realm("_es_api_key", "_es_api_key")


@dataclass(frozen=True)
class ApiKeyRef:
    id: str
    name: str | None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `layers` are sets of cluster privileges that must *all* grant an action: one
    layer (the user's roles) for a user; for an API key, its own role descriptors
    and the owner's role snapshot it is limited by (an empty key layer is left
    out: such a key has its owner's privileges).
    """

    username: str
    roles: tuple[str, ...]
    effective_roles: tuple[str, ...]
    layers: tuple[frozenset[str], ...]
    realm: Realm = NATIVE
    api_key: ApiKeyRef | None = None
    full_name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # For a user: None. For an API key: the realm its owner authenticated with when creating it.
    owner_realm: Realm | None = None

    def allows(self, action: str, own_api_key: bool = False) -> bool:
        return all(any_grants(layer, action, own_api_key) for layer in self.layers)

    @property
    def is_api_key(self) -> bool:
        return self.api_key is not None

    @classmethod
    def for_roles(
        cls, username: str, roles: tuple[str, ...], cluster_by_role: dict[str, tuple[str, ...]], **kw: Any
    ) -> Principal:
        """A user whose assigned `roles` resolved to `cluster_by_role` (roles not found are left out)."""
        privileges = frozenset(p for r in roles if r in cluster_by_role for p in cluster_by_role[r])
        effective = tuple(r for r in roles if r in cluster_by_role)
        return cls(username, roles, effective, (privileges,), **kw)


def authorize(principal: Principal, action: str, *, own_api_key: bool = False, same_user: bool = False) -> None:
    """Raise Elasticsearch's 403 unless `principal` may run `action`.

    `same_user`: the request concerns the caller's own account, which every user may
    authenticate as and change the password of (an API key only authenticates)."""
    if same_user and action in SAME_USER_ACTIONS and (not principal.is_api_key or action == USER_AUTHENTICATE):
        return
    if principal.allows(action, own_api_key):
        return
    raise SecurityException(denial_message(principal, action, own_api_key), status=403)


def denial_message(principal: Principal, action: str, own_api_key: bool = False) -> str:
    if principal.api_key is not None:
        who = f"API key id [{principal.api_key.id}] of user [{principal.username}]"
    else:
        effective = sorted(principal.effective_roles)
        who = f"user [{principal.username}] with effective roles [{','.join(effective)}]"
        missing = sorted(set(principal.roles) - set(effective))
        if missing:
            who += f" (assigned roles [{','.join(missing)}] were not found)"
    message = f"action [{action}] is unauthorized for {who}"
    privileges = granted_by(action, own_api_key)
    if privileges:
        message += f", this action is granted by the cluster privileges [{','.join(privileges)}]"
    return message
