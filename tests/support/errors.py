"""Asserting an Elasticsearch error: its `type`, its status and its exact reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from elserve.errors import ElasticsearchError


def expect_error(call: Callable[[], Any], error_type: str, status: int, reason: str) -> ElasticsearchError:
    with pytest.raises(ElasticsearchError) as caught:
        call()
    error = caught.value
    assert (error.type, error.status, error.reason) == (error_type, status, reason)
    return error


def raising(error: ElasticsearchError) -> Callable[[], Any]:
    """A call that raises `error` (for errors built, not raised, by the code under test)."""

    def call() -> Any:
        raise error

    return call
