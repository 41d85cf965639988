"""One server per data directory: an OS lock on `node.lock`, held for the server's life.

Elasticsearch's `NodeEnvironment` takes a `node.lock` in each data path and refuses to start
when another node holds it ("failed to obtain node locks ... maybe these locations are not
writable or multiple nodes were started on the same data path?"). Two servers on one data
directory would each restore its deployments with their own workers, and each lose track of
what the other changes. The lock is `flock(2)`: the kernel drops it when its holder exits,
however it exits (kill -9 included), so a crash never leaves a stale lock behind. The file
also names its holder (pid, host), for the message the next one prints.

The descriptor is not inheritable; the deployments' worker processes come from multiprocessing's
fork server (started by exec), so none of them keeps the lock after the server is gone.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = "node.lock"


class DataDirLocked(Exception):
    """Another process holds the data directory's lock; `holder` says who, as it wrote it."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.data_dir = data_dir
        self.holder = holder
        super().__init__(
            f"failed to obtain the node lock on the data directory [{data_dir}]: it is held by {holder}; "
            "only one elserve server may use a data directory (stop the other one, or choose another --data-dir)"
        )


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process (not named yet)"


def _open(data_dir: Path) -> int:
    """The lock file's descriptor; in a directory that cannot be written (served read-only), the existing
    file opened for reading, or the directory itself (flock does not care how a file was opened)."""
    path = data_dir / LOCK_FILE
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


class NodeLock:
    """The held lock; `release()` (or the process's exit) lets the next server start."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> NodeLock:
        """Take the lock without waiting; `DataDirLocked` naming the holder when another process has it."""
        fd = _open(data_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DataDirLocked(data_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"elserve pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # read-only: the lock holds all the same, only unnamed
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


__all__ = ["LOCK_FILE", "DataDirLocked", "NodeLock"]
