"""The test hook that holds batches, in one place for both backends.

While the file `ELSERVE_TEST_HOLD_FILE` (in the server's environment) names exists, an allocation holds
each batch before encoding it, and marks that it does with `<file>.held`: tests of a full queue, of
draining, of timeouts and of a killed worker then make their own slowness instead of relying on how
fast a machine encodes (tests/support/hold.py drives it).

The server reads the variable (`configured`) when it starts an allocation and hands the path to it: a
local worker has its model parent's environment, fixed when the fork server started, and a Ray replica
may run on another machine. The allocation's batch loop calls `wait` (a local worker) or `wait_async`
(a Ray replica's event loop). Unset, each is one `None` check.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

HOLD_FILE_ENV = "ELSERVE_TEST_HOLD_FILE"
# How often a held batch looks whether the file is gone.
_POLL_S = 0.005


def configured() -> str | None:
    """The hold file of this server, if it has one: read in the server, handed to each allocation."""
    return os.environ.get(HOLD_FILE_ENV) or None


def held_marker(hold: Path) -> Path:
    """The file an allocation touches once it holds a batch."""
    return hold.with_name(hold.name + ".held")


def _holding(hold: str | None) -> Path | None:
    """The hold file if it exists now (an allocation is about to hold its batch: marked so), else None."""
    if not hold:
        return None
    path = Path(hold)
    if not path.exists():
        return None
    held_marker(path).touch()
    return path


def wait(hold: str | None) -> None:
    """Before a batch (blocking): hold it while the file exists."""
    path = _holding(hold)
    while path is not None and path.exists():
        time.sleep(_POLL_S)


async def wait_async(hold: str | None) -> None:
    """Before a batch, on an event loop: hold it while the file exists."""
    path = _holding(hold)
    while path is not None and path.exists():
        await asyncio.sleep(_POLL_S)
