"""The user store and authentication of `Basic` credentials.

Only the built-in superuser `elastic` exists for now. Verified credentials are
cached (as Elasticsearch's realm cache does), so bcrypt's deliberate slowness is
paid once per user and password, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass

from elserve.errors import SecurityException
from elserve.security.passwords import generate_password, hash_password, verify_password
from elserve.security.privileges import Principal
from elserve.store import Repository

ELASTIC = "elastic"
_KIND = "user"
WWW_AUTHENTICATE = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    roles: tuple[str, ...]
    enabled: bool = True


class UserStore:
    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._cache: dict[str, tuple[str, bytes]] = {}  # username -> (stored hash, sha256 of password)
        self._lock = threading.Lock()

    def get(self, username: str) -> User | None:
        doc = self._repo.get(_KIND, username)
        if doc is None:
            return None
        return User(username, doc["password_hash"], tuple(doc["roles"]), doc.get("enabled", True))

    def set_password(self, username: str, password: str, roles: tuple[str, ...]) -> None:
        self._repo.put(_KIND, username, {"password_hash": hash_password(password), "roles": list(roles)})
        with self._lock:
            self._cache.pop(username, None)

    def bootstrap_elastic(self, env_password: str | None) -> str | None:
        """Make sure `elastic` exists; return a generated password the caller must print once.

        `ELASTIC_PASSWORD` (as in Elasticsearch's container image) wins whenever it is set.
        """
        user = self.get(ELASTIC)
        if env_password:
            if user is None or not verify_password(env_password, user.password_hash):
                self.set_password(ELASTIC, env_password, ("superuser",))
            return None
        if user is not None:
            return None
        password = generate_password()
        self.set_password(ELASTIC, password, ("superuser",))
        return password

    def authenticate(self, username: str, password: str) -> Principal:
        """The user's principal, or 401. A verified password is remembered against the stored hash,
        so bcrypt runs once per password, and a password changed elsewhere invalidates it."""
        principal = self.remembered(username, password)
        if principal is not None:
            return principal
        user = self._active(username)
        if not verify_password(password, user.password_hash):
            raise authentication_failed(username)
        with self._lock:
            self._cache[username] = (user.password_hash, _digest(password))
        return Principal.for_user(username, user.roles)

    def remembered(self, username: str, password: str) -> Principal | None:
        """The user's principal if this password was verified before (microseconds: no bcrypt),
        None if `authenticate` must verify it, or 401 for an unknown or disabled user."""
        user = self._active(username)
        with self._lock:
            cached = self._cache.get(username)
        if cached is not None and cached[0] == user.password_hash and hmac.compare_digest(cached[1], _digest(password)):
            return Principal.for_user(username, user.roles)
        return None

    def _active(self, username: str) -> User:
        user = self.get(username)
        if user is None or not user.enabled:
            raise authentication_failed(username)
        return user


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
