"""Roles: Elasticsearch's role descriptor (parsed as its `RoleDescriptor.parse` does), the reserved
roles, and the native role store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from elserve.errors import ActionRequestValidationException, IllegalArgumentException, ParseException
from elserve.security.body import expect
from elserve.security.names import validate_name
from elserve.security.privileges import is_valid_cluster_privilege, unknown_privilege_message
from elserve.store import Repository

_KIND = "role"
_FIELDS = frozenset(
    {
        "cluster", "indices", "applications", "run_as", "metadata", "transient_metadata", "global",
        "remote_indices", "remote_cluster", "description",
    }
)  # fmt: skip
_INDEX_FIELDS = frozenset(
    {"names", "privileges", "field_security", "query", "allow_restricted_indices", "except", "grant"}
)


@dataclass(frozen=True)
class RoleDescriptor:
    name: str
    cluster: tuple[str, ...] = ()
    indices: tuple[dict[str, Any], ...] = ()
    applications: tuple[dict[str, Any], ...] = ()
    run_as: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def to_doc(self) -> dict[str, Any]:
        """Elasticsearch's rendering of a role (GET role, an API key's `role_descriptors`)."""
        doc: dict[str, Any] = {
            "cluster": list(self.cluster),
            "indices": [dict(i) for i in self.indices],
            "applications": [dict(a) for a in self.applications],
            "run_as": list(self.run_as),
            "metadata": dict(self.metadata),
            "transient_metadata": {"enabled": True},
        }
        if self.description is not None:
            doc["description"] = self.description
        return doc

    @classmethod
    def from_doc(cls, name: str, doc: dict[str, Any]) -> RoleDescriptor:
        """A stored descriptor (trusted: it was validated when it was written)."""
        return cls(
            name,
            tuple(doc.get("cluster", ())),
            tuple(doc.get("indices", ())),
            tuple(doc.get("applications", ())),
            tuple(doc.get("run_as", ())),
            dict(doc.get("metadata") or {}),
            doc.get("description"),
        )


RESERVED_ROLES: dict[str, RoleDescriptor] = {
    r.name: r
    for r in (
        RoleDescriptor(
            "superuser",
            cluster=("all",),
            indices=({"names": ["*"], "privileges": ["all"], "allow_restricted_indices": True},),
            applications=({"application": "*", "privileges": ["*"], "resources": ["*"]},),
            run_as=("*",),
            metadata={"_reserved": True},
        ),
        RoleDescriptor("inference_admin", cluster=("manage_inference",), metadata={"_reserved": True}),
        RoleDescriptor("inference_user", cluster=("monitor_inference",), metadata={"_reserved": True}),
        RoleDescriptor("machine_learning_admin", cluster=("manage_ml",), metadata={"_reserved": True}),
        RoleDescriptor("machine_learning_user", cluster=("monitor_ml",), metadata={"_reserved": True}),
        RoleDescriptor("monitoring_user", cluster=("monitor",), metadata={"_reserved": True}),
    )
}


def _string_list(role: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseException(f"failed to parse role [{role}]. could not parse [{key}] field. expected a string array")
    return tuple(value)


def _indices(role: str, value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise ParseException(
            f"failed to parse indices privileges for role [{role}]. expected field [indices] value to be an array"
        )
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ParseException(
                f"failed to parse indices privileges for role [{role}]. "
                "expected field [indices] value to be an array of objects"
            )
        for key in entry:
            if key not in _INDEX_FIELDS:
                raise ParseException(f"failed to parse indices privileges for role [{role}]. unexpected field [{key}]")
        for required in ("names", "privileges"):
            if required not in entry:
                raise ParseException(
                    f"failed to parse indices privileges for role [{role}]. missing required [{required}] field"
                )
            _string_list(role, required, entry[required])
        names = entry["names"]
        out.append({**entry, "names": [names] if isinstance(names, str) else names})
    return tuple(out)


def parse_role(name: str, body: dict[str, Any], *, reserved_allowed: bool = False) -> RoleDescriptor:
    """A role body as `PUT /_security/role/{name}` (and an API key's `role_descriptors`) read it."""
    errors: list[str] = []
    name_error = validate_name("Role", name)
    if name_error:
        errors.append(name_error)
    elif not reserved_allowed and name in RESERVED_ROLES:
        errors.append(f"Role [{name}] is reserved and may not be used.")
    for key in body:
        if key not in _FIELDS:
            raise ParseException(f"failed to parse role [{name}]. unexpected field [{key}]")
    cluster = _string_list(name, "cluster", body.get("cluster", []))
    indices = _indices(name, body.get("indices", []))
    applications = body.get("applications", [])
    if not isinstance(applications, list) or not all(isinstance(a, dict) for a in applications):
        raise ParseException(f"failed to parse application privileges for role [{name}]. expected an array of objects")
    run_as = _string_list(name, "run_as", body.get("run_as", []))
    metadata = expect("metadata", body.get("metadata") or {}, dict, "object")
    description = expect("description", body.get("description"), str, "string", nullable=True)
    errors += [unknown_privilege_message(p) for p in cluster if not is_valid_cluster_privilege(p)]
    if any(k.startswith("_") for k in metadata):
        errors.append("role descriptor metadata keys may not start with [_]")
    if errors:
        raise ActionRequestValidationException(errors)
    return RoleDescriptor(name, cluster, indices, tuple(applications), run_as, metadata, description)


class RoleStore:
    """Native roles in the store, with the reserved roles in front of them."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    def get(self, name: str) -> RoleDescriptor | None:
        if name in RESERVED_ROLES:
            return RESERVED_ROLES[name]
        doc = self._repo.get(_KIND, name)
        return RoleDescriptor.from_doc(name, doc) if doc is not None else None

    def all(self) -> list[RoleDescriptor]:
        native = [RoleDescriptor.from_doc(k, d) for k, d in self._repo.list(_KIND)]
        return sorted([*RESERVED_ROLES.values(), *native], key=lambda r: r.name)

    def put(self, role: RoleDescriptor) -> bool:
        """Store a role; True if it was created, False if it replaced one."""
        doc = role.to_doc()
        doc.pop("transient_metadata")
        if self._repo.create(_KIND, role.name, doc):
            return True
        self._repo.put(_KIND, role.name, doc)
        return False

    def delete(self, name: str) -> bool:
        if name in RESERVED_ROLES:
            raise IllegalArgumentException(f"role [{name}] is reserved and cannot be deleted")
        return self._repo.delete(_KIND, name)

    def resolve(self, names: tuple[str, ...]) -> list[RoleDescriptor]:
        """The roles that exist among `names` (an unknown role grants nothing, as in Elasticsearch)."""
        return [r for r in (self.get(n) for n in names) if r is not None]
