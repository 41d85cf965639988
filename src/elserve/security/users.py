"""The native realm's users, the reserved `elastic` superuser, and password checks.

Verified passwords are remembered (as Elasticsearch's realm cache does), so
bcrypt's deliberate slowness is paid once per user and password, not on every
request. An unknown or disabled user's password is still run through bcrypt,
against a dummy hash of the same cost: the answer takes as long as for a known
user, so user names cannot be found by timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from elserve.errors import (
    ActionRequestValidationException,
    IllegalArgumentException,
    ParseException,
    SecurityException,
    ValidationException,
)
from elserve.security.body import expect
from elserve.security.names import validate_name
from elserve.security.passwords import (
    accept_password_hash,
    check_password_length,
    dummy_hash,
    generate_password,
    hash_password,
    verify_password,
)
from elserve.store import Repository

ELASTIC = "elastic"
# Elasticsearch's reserved users: only `elastic` exists here; the other names may not be taken either.
RESERVED_USERNAMES = frozenset(
    {ELASTIC, "kibana", "kibana_system", "logstash_system", "beats_system", "apm_system", "remote_monitoring_user"}
)
_KIND = "user"
# Marks an `elastic` whose password is still the bootstrap one (ELASTIC_PASSWORD, or generated at the first
# start): only such a password may be replaced by ELASTIC_PASSWORD at a start.
_BOOTSTRAP = "bootstrap_password"
log = logging.getLogger("elserve.security")
WWW_AUTHENTICATE = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    roles: tuple[str, ...]
    full_name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    @property
    def reserved(self) -> bool:
        return self.username in RESERVED_USERNAMES

    def to_doc(self) -> dict[str, Any]:
        """Elasticsearch's rendering (GET user): everything but the hash."""
        metadata = {"_reserved": True, **self.metadata} if self.reserved else dict(self.metadata)
        return {
            "username": self.username,
            "roles": list(self.roles),
            "full_name": self.full_name,
            "email": self.email,
            "metadata": metadata,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class PutUser:
    """A parsed `PUT /_security/user/{name}` body; the password is already hashed."""

    username: str
    roles: tuple[str, ...]
    password_hash: str | None
    full_name: str | None
    email: str | None
    metadata: dict[str, Any]
    enabled: bool


def parse_put_user(username: str, body: dict[str, Any]) -> PutUser:
    """Elasticsearch's `PutUserRequestBuilder.source` then `TransportPutUserAction`'s validation."""
    password_hash = None
    roles: tuple[str, ...] | None = None
    full_name = email = None
    metadata: dict[str, Any] = {}
    enabled = True
    for key, value in body.items():
        if key == "password":
            check_password_length(expect(key, value, str, "string"))
            if password_hash is not None:
                raise ValidationException(["password_hash has already been set"])
            password_hash = hash_password(value)
        elif key == "password_hash":
            if password_hash is not None:
                raise ValidationException(["password_hash has already been set"])
            password_hash = accept_password_hash(expect(key, value, str, "string"))
        elif key == "roles":
            if isinstance(value, str):
                roles = tuple(r.strip() for r in value.split(",") if r.strip())
            elif isinstance(value, list) and all(isinstance(r, str) for r in value):
                roles = tuple(value)
            else:
                raise ParseException(f"expected field [{key}] to be of type string array")
        elif key == "full_name":
            full_name = expect(key, value, str, "string", nullable=True)
        elif key == "email":
            email = expect(key, value, str, "string", nullable=True)
        elif key == "metadata":
            metadata = expect(key, value, dict, "object")
        elif key == "enabled":
            enabled = expect(key, value, bool, "boolean")
        elif key == "username":
            if expect(key, value, str, "string") != username:
                raise IllegalArgumentException(
                    f"[username] in source does not match the username provided [{username}]"
                )
        else:
            raise ParseException(f"failed to parse add user request. unexpected field [{key}]")
    errors: list[str] = []
    if roles is None:
        errors.append("roles are missing")
    if any(k.startswith("_") for k in metadata):
        errors.append("metadata keys may not start with [_]")
    if username in RESERVED_USERNAMES:
        errors.append(f"user [{username}] is reserved and only the password can be changed")
    else:
        name_error = validate_name("User", username)
        if name_error:
            errors.append(name_error)
    for role in roles or ():
        role_error = validate_name("Role", role)
        if role_error:
            errors.append(role_error)
    if errors:
        raise ActionRequestValidationException(errors)
    return PutUser(username, roles or (), password_hash, full_name, email, metadata, enabled)


def parse_change_password(body: dict[str, Any]) -> str:
    """A `_password` body: the new password's hash."""
    password_hash = None
    for key, value in body.items():
        if key == "password":
            check_password_length(expect(key, value, str, "string"))
            password_hash = hash_password(value)
        elif key == "password_hash":
            password_hash = accept_password_hash(expect(key, value, str, "string"))
        else:
            raise ParseException(f"failed to parse change password request. unexpected field [{key}]")
    if password_hash is None:
        raise ActionRequestValidationException(["password must be specified"])
    return password_hash


class UserStore:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._cache: dict[str, tuple[str, bytes]] = {}  # username -> (stored hash, sha256 of password)
        self._lock = threading.Lock()

    # -- reads ----------------------------------------------------------------------------------

    def get(self, username: str) -> User | None:
        doc = self._repo.get(_KIND, username)
        return _user(username, doc) if doc is not None else None

    def all(self) -> list[User]:
        return [_user(k, d) for k, d in self._repo.list(_KIND)]

    # -- writes ---------------------------------------------------------------------------------

    def put(self, request: PutUser) -> bool:
        """Create or update a native user; True if created. A new user needs a password."""
        doc = {
            "roles": list(request.roles),
            "full_name": request.full_name,
            "email": request.email,
            "metadata": request.metadata,
            "enabled": request.enabled,
        }
        if request.password_hash is not None and self._repo.create(
            _KIND, request.username, {**doc, "password_hash": request.password_hash}
        ):
            return True
        existing = self._repo.get(_KIND, request.username)
        if existing is None:
            raise ValidationException(["password must be specified unless you are updating an existing user"])
        self._repo.put(
            _KIND, request.username, {**doc, "password_hash": request.password_hash or existing["password_hash"]}
        )
        self._forget(request.username)
        return False

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """A password of the user's own (the API, `elserve users reset-password`): for `elastic` it ends the
        bootstrap password."""
        doc = self._repo.get(_KIND, username)
        if doc is None:
            raise ValidationException(["user must exist in order to change password"])
        doc = {k: v for k, v in doc.items() if k != _BOOTSTRAP}
        self._repo.put(_KIND, username, {**doc, "password_hash": password_hash})
        self._forget(username)

    def set_password(self, username: str, password: str) -> None:
        self.set_password_hash(username, hash_password(password))

    def set_enabled(self, username: str, enabled: bool) -> None:
        doc = self._repo.get(_KIND, username)
        if doc is None:
            raise ValidationException(["user must exist in order to change enabled status"])
        self._repo.put(_KIND, username, {**doc, "enabled": enabled})

    def delete(self, username: str) -> bool:
        if username in RESERVED_USERNAMES:
            raise IllegalArgumentException(f"user [{username}] is reserved and cannot be deleted")
        self._forget(username)
        return self._repo.delete(_KIND, username)

    def bootstrap_elastic(self, env_password: str | None) -> str | None:
        """Make sure `elastic` exists; return a generated password the caller must print once.

        `ELASTIC_PASSWORD` is a bootstrap password, as Elasticsearch's `bootstrap.password` (ReservedRealm.java
        uses it only while the reserved user has no stored password): it sets `elastic`'s password while that
        is still a bootstrap one, and is ignored, with a log line, once a password of its own was set. Whether
        `elastic` is enabled is never changed here.
        """
        doc = self._repo.get(_KIND, ELASTIC)
        if doc is None:
            password = env_password or generate_password()
            self._repo.put(
                _KIND,
                ELASTIC,
                {"password_hash": hash_password(password), "roles": ["superuser"], "enabled": True, _BOOTSTRAP: True},
            )
            return None if env_password else password
        if not env_password:
            return None
        matches = verify_password(env_password, doc["password_hash"])
        if _BOOTSTRAP not in doc and matches:  # stored before the marker existed: still the bootstrap password
            self._repo.put(_KIND, ELASTIC, {**doc, _BOOTSTRAP: True})
        elif doc.get(_BOOTSTRAP):
            if not matches:
                self._repo.put(_KIND, ELASTIC, {**doc, "password_hash": hash_password(env_password)})
                self._forget(ELASTIC)
        elif not matches:
            log.warning(
                "ELASTIC_PASSWORD is ignored: the [elastic] user has a password of its own (set through the change "
                "password API or `elserve users reset-password`), and the variable only applies until one is set. "
                "Change the password that way, or unset ELASTIC_PASSWORD."
            )
        return None

    # -- authentication -------------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> User:
        """The user, or 401. Runs bcrypt once whatever the outcome (unknown and disabled users included)."""
        cached = self.remembered(username, password)
        if cached is not None:
            return cached
        user = self.get(username)
        ok = verify_password(password, user.password_hash if user is not None else dummy_hash())
        if user is None or not ok or not user.enabled:
            raise authentication_failed(username)
        with self._lock:
            self._cache[username] = (user.password_hash, _digest(password))
        return user

    def remembered(self, username: str, password: str) -> User | None:
        """The user if this password was verified before (microseconds: no bcrypt), else None: the caller
        must go through `authenticate`, whose cost does not depend on whether the user exists."""
        with self._lock:
            cached = self._cache.get(username)
        if cached is None:
            return None
        user = self.get(username)
        if (
            user is not None
            and user.enabled
            and cached[0] == user.password_hash
            and hmac.compare_digest(cached[1], _digest(password))
        ):
            return user
        return None

    def _forget(self, username: str) -> None:
        with self._lock:
            self._cache.pop(username, None)


def _user(username: str, doc: dict[str, Any]) -> User:
    return User(
        username,
        doc["password_hash"],
        tuple(doc.get("roles", ())),
        doc.get("full_name"),
        doc.get("email"),
        dict(doc.get("metadata") or {}),
        doc.get("enabled", True),
    )


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode()).digest()


def missing_credentials(request_uri: str) -> SecurityException:
    return SecurityException(
        f"missing authentication credentials for REST request [{request_uri}]",
        status=401,
        headers={"WWW-Authenticate": WWW_AUTHENTICATE},
    )


def authentication_failed(username: str, request_uri: str | None = None) -> SecurityException:
    suffix = f" for REST request [{request_uri}]" if request_uri else ""
    return SecurityException(
        f"unable to authenticate user [{username}]{suffix}",
        status=401,
        headers={"WWW-Authenticate": WWW_AUTHENTICATE},
    )
