"""Asserting an Elasticsearch error, raised or answered: its `type`, its status and its exact reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
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


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """An Elasticsearch error answer as (HTTP status, `error.type`, `error.reason`); its `status` field
    and its `root_cause` list are checked to be there and to agree."""
    body = response.json()
    error = body["error"]
    assert body["status"] == response.status_code, body
    assert error["root_cause"], body
    return response.status_code, error["type"], error["reason"]
