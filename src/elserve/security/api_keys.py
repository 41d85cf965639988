"""API keys: create, read, invalidate, and authenticate `Authorization: ApiKey <encoded>`.

A key's secret is stored only as a salted SHA-256 (Elasticsearch's `ssha256`
API key hasher): it is a random 128-bit value, so a fast hash is as safe as a
slow one and no cache is needed. A key's privileges are the intersection of its
own `role_descriptors` (if any) and a snapshot of its owner's roles taken at
creation (`limited_by`), as in Elasticsearch.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from elserve.errors import (
    ActionRequestValidationException,
    IllegalArgumentException,
    SecurityException,
    XContentParseException,
    field_parse_failed,
)
from elserve.security.authz import API_KEY_REALM, ApiKeyRef, Principal, Realm
from elserve.security.roles import RoleDescriptor, parse_role
from elserve.security.users import WWW_AUTHENTICATE
from elserve.store import Repository
from elserve.timevalue import parse_time

_KIND = "api_key"
_CREATE_FIELDS = frozenset({"name", "expiration", "role_descriptors", "metadata"})
MAX_NAME_LENGTH = 256


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    api_key: str
    expiration_ms: int | None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.expiration_ms is not None:
            doc["expiration"] = self.expiration_ms
        encoded = base64.b64encode(f"{self.id}:{self.api_key}".encode()).decode()
        return {**doc, "api_key": self.api_key, "encoded": encoded}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    return salt.hex() + "$" + hashlib.sha256(salt + secret.encode()).hexdigest()


def _secret_matches(secret: str, stored: str) -> bool:
    salt_hex, _, _ = stored.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return hmac.compare_digest(_hash_secret(secret, salt), stored)


def _parse_create(body: dict[str, Any]) -> tuple[str, int | None, dict[str, RoleDescriptor], dict[str, Any]]:
    for key in body:
        if key not in _CREATE_FIELDS:
            raise XContentParseException(f"[api_key_request] unknown field [{key}]")
    name = body.get("name")
    errors: list[str] = []
    if not isinstance(name, str) or not name:
        errors.append("api key name is required")
    else:
        if len(name) > MAX_NAME_LENGTH:
            errors.append(f"api key name may not be more than {MAX_NAME_LENGTH} characters long")
        if name != name.strip():
            errors.append("api key name may not begin or end with whitespace")
        if name.startswith("_"):
            errors.append("api key name may not begin with an underscore")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise field_parse_failed("api_key_request", "metadata")
    if any(k.startswith("_") for k in metadata):
        errors.append("API key metadata keys may not start with [_]")
    descriptors_body = body.get("role_descriptors") or {}
    if not isinstance(descriptors_body, dict):
        raise field_parse_failed("api_key_request", "role_descriptors")
    descriptors: dict[str, RoleDescriptor] = {}
    for role_name, role_body in descriptors_body.items():
        if not isinstance(role_body, dict):
            raise field_parse_failed("api_key_request", "role_descriptors")
        descriptors[role_name] = parse_role(role_name, role_body, reserved_allowed=True)
    expiration = body.get("expiration")
    expiration_ms = None
    if expiration is not None:
        seconds = parse_time(str(expiration), "expiration", "-1").seconds
        if seconds is not None:
            expiration_ms = _now_ms() + int(seconds * 1000)
    if errors:
        raise ActionRequestValidationException(errors)
    assert isinstance(name, str)  # a missing or non-string name is one of the errors above
    return name, expiration_ms, descriptors, metadata


class ApiKeyStore:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    def create(self, body: dict[str, Any], owner: Principal, owner_roles: list[RoleDescriptor]) -> CreatedKey:
        """A new key for `owner`, limited by `owner_roles` (the owner's roles now)."""
        name, expiration_ms, descriptors, metadata = _parse_create(body)
        limited_by = owner_roles
        if owner.is_api_key:
            # Elasticsearch: a key made with a key may only hold no privileges.
            if not body.get("role_descriptors") or any(
                d.cluster or d.indices or d.applications or d.run_as for d in descriptors.values()
            ):
                raise IllegalArgumentException(
                    "creating derived api keys requires an explicit role descriptor that is empty (has no privileges)"
                )
            limited_by = []
        key_id = base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()
        secret = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        realm = owner.owner_realm or owner.realm
        self._repo.put(
            _KIND,
            key_id,
            {
                "name": name,
                "hash": _hash_secret(secret),
                "creation": _now_ms(),
                "expiration": expiration_ms,
                "invalidated": False,
                "invalidation": None,
                "username": owner.username,
                "realm": realm.name,
                "realm_type": realm.type,
                "metadata": metadata,
                "role_descriptors": {n: d.to_doc() for n, d in descriptors.items()},
                "limited_by": [{r.name: r.to_doc()} for r in limited_by],
            },
        )
        return CreatedKey(key_id, name, secret, expiration_ms)

    def find(
        self,
        *,
        ids: list[str] | None = None,
        name: str | None = None,
        username: str | None = None,
        realm_name: str | None = None,
        active_only: bool = False,
    ) -> list[tuple[str, dict[str, Any]]]:
        now = _now_ms()
        found = []
        for key_id, doc in self._repo.list(_KIND):
            if ids and key_id not in ids:
                continue
            if name and not fnmatch.fnmatchcase(doc["name"], name):
                continue
            if username and doc["username"] != username:
                continue
            if realm_name and doc["realm"] != realm_name:
                continue
            if active_only and (doc["invalidated"] or (doc["expiration"] is not None and doc["expiration"] <= now)):
                continue
            found.append((key_id, doc))
        return sorted(found, key=lambda kv: kv[1]["creation"])

    def invalidate(self, matches: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        invalidated, previously = [], []
        for key_id, doc in matches:
            if doc["invalidated"]:
                previously.append(key_id)
                continue
            self._repo.put(_KIND, key_id, {**doc, "invalidated": True, "invalidation": _now_ms()})
            invalidated.append(key_id)
        return {"invalidated_api_keys": invalidated, "previously_invalidated_api_keys": previously, "error_count": 0}

    def authenticate(self, encoded: str) -> Principal:
        """The principal of `ApiKey <encoded>`, or Elasticsearch's 401."""
        try:
            key_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise api_key_failed("invalid ApiKey value") from None
        if not sep or not key_id:
            raise api_key_failed("invalid ApiKey value")
        doc = self._repo.get(_KIND, key_id)
        if doc is None:
            raise api_key_failed(f"unable to find apikey with id {key_id}")
        if not _secret_matches(secret, doc["hash"]):
            raise api_key_failed(f"invalid credentials for API key [{key_id}]")
        if doc["invalidated"]:
            raise api_key_failed("api key has been invalidated")
        if doc["expiration"] is not None and doc["expiration"] <= _now_ms():
            raise api_key_failed("api key is expired")
        return principal_of(key_id, doc)


def principal_of(key_id: str, doc: dict[str, Any]) -> Principal:
    limited = frozenset(p for entry in doc["limited_by"] for role in entry.values() for p in role.get("cluster", ()))
    layers = [limited]
    if doc["role_descriptors"]:
        layers.insert(0, frozenset(p for role in doc["role_descriptors"].values() for p in role.get("cluster", ())))
    return Principal(
        doc["username"],
        (),
        (),
        tuple(layers),
        realm=API_KEY_REALM,
        api_key=ApiKeyRef(key_id, doc["name"]),
        owner_realm=Realm(doc["realm"], doc["realm_type"]),
    )


def render_key(key_id: str, doc: dict[str, Any], with_limited_by: bool) -> dict[str, Any]:
    """One entry of `GET /_security/api_key`."""
    out: dict[str, Any] = {"id": key_id, "name": doc["name"], "type": "rest", "creation": doc["creation"]}
    if doc["expiration"] is not None:
        out["expiration"] = doc["expiration"]
    out["invalidated"] = doc["invalidated"]
    if doc["invalidation"] is not None:
        out["invalidation"] = doc["invalidation"]
    out.update(
        username=doc["username"],
        realm=doc["realm"],
        realm_type=doc["realm_type"],
        metadata=doc["metadata"],
        role_descriptors=doc["role_descriptors"],
    )
    if with_limited_by:
        out["limited_by"] = doc["limited_by"]
    return out


def api_key_failed(detail: str) -> SecurityException:
    return SecurityException(
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
        status=401,
        headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        metadata={"additional_unsuccessful_credentials": f"API key: {detail}"},
    )
