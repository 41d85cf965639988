"""Password hashing: bcrypt with cost 10, Elasticsearch's default (`xpack.security.authc.password_hashing.algorithm`)."""

from __future__ import annotations

import secrets

import bcrypt

BCRYPT_COST = 10
MIN_PASSWORD_LENGTH = 6  # Elasticsearch: "passwords must be at least [6] characters long"


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def verify_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # a malformed stored hash never authenticates
        return False


def generate_password() -> str:
    """A random 20-character password, as `elasticsearch-reset-password` prints."""
    return secrets.token_urlsafe(15)
