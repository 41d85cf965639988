"""One server per data directory: the node lock (issue 24 row 7)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from elserve.store.node_lock import LOCK_FILE, DataDirLocked, NodeLock


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    lock = NodeLock.acquire(tmp_path)
    with pytest.raises(DataDirLocked) as refused:
        NodeLock.acquire(tmp_path)
    assert f"elserve pid {os.getpid()} on host {socket.gethostname()}" in str(refused.value)
    lock.release()
    NodeLock.acquire(tmp_path).release()  # free again
    assert (tmp_path / LOCK_FILE).stat().st_mode & 0o077 == 0


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from pathlib import Path; from elserve.store.node_lock import NodeLock;"
                f"NodeLock.acquire(Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(600)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirLocked, match=f"pid {holder.pid} "):
            NodeLock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    NodeLock.acquire(tmp_path).release()  # kill -9 released it


def test_a_directory_that_cannot_be_written_is_still_locked(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes any directory: no unwritable directory to try")
    tmp_path.chmod(0o500)
    try:
        lock = NodeLock.acquire(tmp_path)  # the directory itself is locked
        with pytest.raises(DataDirLocked):
            NodeLock.acquire(tmp_path)
        lock.release()
    finally:
        tmp_path.chmod(0o700)
