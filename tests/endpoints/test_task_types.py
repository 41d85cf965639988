"""Task types: parsing (trimmed, case-insensitive) and what the service serves."""

from __future__ import annotations

import pytest

from elserve.endpoints.task_types import TaskType, check_served, parse_path_task_type, parse_task_type
from tests.support.errors import expect_error


@pytest.mark.parametrize(
    ("name", "task_type"),
    [
        ("sparse_embedding", TaskType.SPARSE_EMBEDDING),
        (" SPARSE_embedding\t", TaskType.SPARSE_EMBEDDING),
        ("text_embedding", TaskType.TEXT_EMBEDDING),
        ("rerank", TaskType.RERANK),
        ("completion", TaskType.COMPLETION),
        ("chat_completion", TaskType.CHAT_COMPLETION),
        ("embedding", TaskType.EMBEDDING),
        ("any", TaskType.ANY),
    ],
)
def test_known_task_types(name: str, task_type: TaskType) -> None:
    assert parse_task_type(name) is task_type


@pytest.mark.parametrize("name", ["bad", "sparse-embedding", "", " x "])
def test_unknown_task_type_keeps_the_raw_name(name: str) -> None:
    expect_error(lambda: parse_task_type(name), "status_exception", 400, f"Unknown task_type [{name}]")


def test_no_path_task_type_is_any() -> None:
    assert parse_path_task_type(None) is TaskType.ANY


@pytest.mark.parametrize("task_type", [t for t in TaskType if t is not TaskType.SPARSE_EMBEDDING])
def test_only_sparse_embedding_is_served(task_type: TaskType) -> None:
    expect_error(
        lambda: check_served(task_type),
        "status_exception",
        400,
        f"The [elasticsearch] service does not support task type [{task_type.value}]",
    )
    check_served(TaskType.SPARSE_EMBEDDING)


def test_any_or_same() -> None:
    assert TaskType.ANY.is_any_or_same(TaskType.RERANK)
    assert TaskType.RERANK.is_any_or_same(TaskType.ANY)
    assert TaskType.SPARSE_EMBEDDING.is_any_or_same(TaskType.SPARSE_EMBEDDING)
    assert not TaskType.TEXT_EMBEDDING.is_any_or_same(TaskType.SPARSE_EMBEDDING)
