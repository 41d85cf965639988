"""User and role names as Elasticsearch's `Validation` accepts them."""

from __future__ import annotations

MAX_NAME_LENGTH = 1024
# Printable Basic Latin (space to tilde), Elasticsearch's VALID_NAME_CHARS.
_VALID = frozenset(chr(c) for c in range(0x20, 0x7F))


def validate_name(kind: str, name: str) -> str | None:
    """None if `name` is a valid user or role name, else Elasticsearch's message (`kind`: User or Role)."""
    if (
        1 <= len(name) <= MAX_NAME_LENGTH
        and all(c in _VALID for c in name)
        and not name.startswith(" ")
        and not name.endswith(" ")
    ):
        return None
    return (
        f"{kind} names must be at least 1 and no more than {MAX_NAME_LENGTH} characters. They can contain "
        "alphanumeric characters (a-z, A-Z, 0-9), spaces, punctuation, and printable symbols in the Basic Latin "
        "(ASCII) block. Leading or trailing whitespace is not allowed."
    )
