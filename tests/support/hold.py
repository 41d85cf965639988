"""Holding a deployment's workers, so that a test makes its own slowness: a worker started with
`HOLD_FILE_ENV` naming a file holds each batch while that file exists (deployments/worker.py).
Queue-full, drain, timeout and crash tests then never depend on how fast the machine encodes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elserve.deployments.worker import HOLD_FILE_ENV

__all__ = ["HOLD_FILE_ENV", "held", "wait_until_held"]


@contextmanager
def held(hold_file: Path) -> Iterator[Path]:
    """Workers hold their batches inside the block; released when it ends, however it ends."""
    hold_file.with_name(hold_file.name + ".held").unlink(missing_ok=True)
    hold_file.touch()
    try:
        yield hold_file
    finally:
        hold_file.unlink(missing_ok=True)


def wait_until_held(hold_file: Path, timeout: float = 300.0) -> None:
    """Until a worker holds a batch (the timeout only guards against a hang)."""
    marker = hold_file.with_name(hold_file.name + ".held")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert time.monotonic() < deadline, "no worker took a batch"
        time.sleep(0.01)
