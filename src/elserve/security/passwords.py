"""Password hashing: bcrypt with cost 10, Elasticsearch's default.

The setting is `xpack.security.authc.password_hashing.algorithm`."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache

import bcrypt

from elserve.errors import IllegalArgumentException, ValidationException

BCRYPT_COST = 10
MIN_PASSWORD_LENGTH = 6  # Elasticsearch: "passwords must be at least [6] characters long"
# bcrypt keys its cipher with at most 72 bytes of the password. Elasticsearch accepts any length
# (Validation.Users.validatePassword checks only the minimum) and its BCrypt.java uses the first 72 bytes
# of the UTF-8 password, ignoring the rest; the bcrypt package refuses longer input (ValueError) instead.
# Passing it those same 72 bytes answers as Elasticsearch does, and hashes made by either verify in the other.
BCRYPT_MAX_PASSWORD_BYTES = 72
_BCRYPT_HASH = re.compile(r"^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$")


def _bcrypt_input(password: str) -> bytes:
    return password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]


def hash_password(password: str) -> str:
    return bcrypt.hashpw(_bcrypt_input(password), bcrypt.gensalt(BCRYPT_COST)).decode()


def verify_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_bcrypt_input(password), hashed.encode())
    except ValueError:  # a malformed stored hash never authenticates
        return False


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of nothing anyone knows, with the same cost as real ones: an unknown or disabled user's
    password is checked against it, so the answer takes as long as for a known user (no enumeration)."""
    return hash_password(secrets.token_urlsafe(32))


def check_password_length(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationException([f"passwords must be at least [{MIN_PASSWORD_LENGTH}] characters long"])


def accept_password_hash(password_hash: str) -> str:
    """A client-supplied `password_hash` must use the configured algorithm (bcrypt, cost 10), as Elasticsearch's
    `Hasher.resolveFromHash` requires."""
    match = _BCRYPT_HASH.match(password_hash)
    if match is None:
        used = "NOOP"
    elif int(match.group(1)) == BCRYPT_COST:
        return password_hash
    else:
        used = f"BCRYPT{int(match.group(1))}"
    raise IllegalArgumentException(
        f"Provided password hash uses [{used}] but the configured hashing algorithm is [BCRYPT]"
    )


def generate_password() -> str:
    """A random 20-character password, as `elasticsearch-reset-password` prints."""
    return secrets.token_urlsafe(15)
