"""Waiting for what will certainly come (a server's answer, a process's exit, a scaler's decision):
polled, with a bound only against a hang, never a time the machine must meet."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# The default bound: minutes, whatever the machine's load.
HANG_S = 300.0


def wait_until(
    condition: Callable[[], object], what: str = "the condition", timeout: float = HANG_S, interval: float = 0.05
) -> None:
    """Until `condition()` is true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never within {timeout} s: {what}"
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], object], what: str = "the condition", timeout: float = HANG_S, interval: float = 0.05
) -> None:
    """`wait_until` on an event loop (the loop runs meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never within {timeout} s: {what}"
        await asyncio.sleep(interval)
