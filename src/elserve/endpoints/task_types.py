"""Elasticsearch's inference task types (`server/.../inference/TaskType.java`).

Every task type Elasticsearch knows parses; elserve's services serve only
`sparse_embedding`, and say so with Elasticsearch's unsupported-task message.
"""

from __future__ import annotations

from enum import StrEnum

from elserve.errors import StatusException
from elserve.java_text import java_trim


class TaskType(StrEnum):
    TEXT_EMBEDDING = "text_embedding"
    SPARSE_EMBEDDING = "sparse_embedding"
    RERANK = "rerank"
    COMPLETION = "completion"
    ANY = "any"
    CHAT_COMPLETION = "chat_completion"
    EMBEDDING = "embedding"

    def is_any_or_same(self, other: TaskType) -> bool:
        """`TaskType.isAnyOrSame`: `other` is ANY or this very type (ANY accepts everything)."""
        return self is TaskType.ANY or other is TaskType.ANY or other is self


# The task types the `elasticsearch` service (and its `elser` alias) serves here.
SERVED_TASK_TYPES = frozenset({TaskType.SPARSE_EMBEDDING})


def parse_task_type(name: str | None) -> TaskType:
    """`TaskType.fromStringOrStatusException`: trimmed, case-insensitive; 400 if unknown."""
    if name is None:
        raise StatusException("Task type must not be null", 400)
    try:
        # valueOf(name.trim().toUpperCase(Locale.ROOT)): the enum constant's name.
        return TaskType[java_trim(name).upper()]
    except KeyError:
        raise StatusException(f"Unknown task_type [{name}]", 400) from None


def parse_path_task_type(name: str | None) -> TaskType:
    """A task type from the URL; no segment means ANY (the endpoint's own type)."""
    return TaskType.ANY if name is None else parse_task_type(name)


def unsupported_task_type(task_type: TaskType, service: str = "elasticsearch") -> StatusException:
    """`TaskType.unsupportedTaskTypeErrorMsg`, 400."""
    return StatusException(f"The [{service}] service does not support task type [{task_type}]", 400)


def check_served(task_type: TaskType, service: str = "elasticsearch") -> None:
    if task_type not in SERVED_TASK_TYPES:
        raise unsupported_task_type(task_type, service)
