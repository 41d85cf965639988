"""Errors Elasticsearch's REST layer answers with a plain-string `error`, rendered by `api/errors.py`."""

from __future__ import annotations


class RestError(Exception):
    """An error Elasticsearch's REST layer answers with a plain-string `error` (unknown route, bad method)."""

    def __init__(self, message: str, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}
