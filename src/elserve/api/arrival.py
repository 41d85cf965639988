"""When a request arrived: its first byte, stamped by the connection (`api/protocol.py`).

The inference `timeout` counts from there, so time spent receiving, parsing and
tokenizing a request is part of it, as a client measuring from its send expects.
"""

from __future__ import annotations

import time
from dataclasses import replace

from starlette.requests import Request

from elserve.timevalue import TimeValue

# An ASGI scope key of elserve's own; absent under other servers (then: when the route ran).
ARRIVAL = "elserve.arrived_monotonic"


def time_left(request: Request, timeout: TimeValue) -> TimeValue:
    """`timeout` less what already passed since the request arrived (its text unchanged, for messages)."""
    if timeout.seconds is None:
        return timeout
    arrived = request.scope.get(ARRIVAL)
    if arrived is None:
        return timeout
    return replace(timeout, seconds=max(0.0, timeout.seconds - (time.monotonic() - arrived)))
