"""A deployment's `priority`: Elasticsearch's `Priority` enum
(x-pack/plugin/core/.../ml/inference/assignment/Priority.java).

`normal` deployments share the node's processors; a `low` one runs 1 allocation x 1 thread at a lower OS
priority, takes no processor from the others (capacity.py) and has no query lane. Serialized lowercase,
as Elasticsearch's `toString`.
"""

from __future__ import annotations

from enum import StrEnum

from elserve.errors import IllegalArgumentException

# Where Elasticsearch's enum lives: its name is in the message for an unknown priority.
_PRIORITY_ENUM = "org.elasticsearch.xpack.core.ml.inference.assignment.Priority"


class Priority(StrEnum):
    NORMAL = "normal"
    LOW = "low"

    @classmethod
    def parse(cls, value: str) -> Priority:
        """`Priority.fromString`: case-insensitive; anything else is Java's `valueOf` error."""
        name = value.upper()
        try:
            return cls[name]
        except KeyError:
            raise IllegalArgumentException(f"No enum constant {_PRIORITY_ENUM}.{name}") from None
