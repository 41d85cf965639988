"""Holding a deployment's allocations, so that a test makes its own slowness: a server whose environment
has `HOLD_FILE_ENV` naming a file holds each batch while that file exists (deployments/batch_hold.py).
Queue-full, drain, timeout and crash tests then never depend on how fast the machine encodes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elserve.deployments.batch_hold import held_marker


@contextmanager
def held(hold_file: Path) -> Iterator[Path]:
    """Workers hold their batches inside the block; released when it ends, however it ends."""
    held_marker(hold_file).unlink(missing_ok=True)
    hold_file.touch()
    try:
        yield hold_file
    finally:
        hold_file.unlink(missing_ok=True)


def wait_until_held(hold_file: Path, timeout: float = 300.0) -> None:
    """Until a worker holds a batch (the timeout only guards against a hang)."""
    marker = held_marker(hold_file)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert time.monotonic() < deadline, "no worker took a batch"
        time.sleep(0.01)
