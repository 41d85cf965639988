"""Deprecation warnings of the request being served: Elasticsearch's thread context `Warning`s.

`DeprecationLogger.warn` / `.critical` put the message in the thread context the moment a
deprecated thing is used, and every response to that request carries it as a `Warning`
header, errors included (`ThreadContext.addResponseHeader`, sent by `DefaultRestChannel`).
Here the request's messages live in a context variable: any part may call `warn(...)` while
serving it, and `api/` (`api/deprecation_headers.py`) writes them on whatever answer leaves.
A message is kept once, as the thread context keeps each distinct warning once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

log = logging.getLogger("elserve.deprecation")

_WARNINGS: ContextVar[list[str] | None] = ContextVar("elserve_deprecation_warnings", default=None)


def warn(message: str) -> None:
    """A deprecated feature was used by the request being served (logged, and sent back as a `Warning`)."""
    warnings = _WARNINGS.get()
    if warnings is None:  # outside a request (a CLI command, a test of a lower part): only logged
        log.debug("deprecated: %s", message)
        return
    if message not in warnings:
        log.debug("deprecated: %s", message)
        warnings.append(message)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the warnings of everything run inside (one request); the list fills as they come."""
    warnings: list[str] = []
    token = _WARNINGS.set(warnings)
    try:
        yield warnings
    finally:
        _WARNINGS.reset(token)
