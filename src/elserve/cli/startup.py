"""What `elserve serve` and the other commands look at before they work: the store and the data directory.

Each problem is one log line and an exit status of its own (sysexits.h): 75 (EX_TEMPFAIL) where the same
start succeeds later, 78 (EX_CONFIG) where the set-up must change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from elserve.settings import ServerSettings

if TYPE_CHECKING:
    from elserve.store.node_lock import NodeLock


def check_store_reachable(store: str | None) -> None:
    """A --store database that can be reached, of a schema this release can use (or bring to its own)."""
    if store is None:
        return
    from elserve.store.postgres import check_store

    problem, status = check_store(store)
    if problem is not None:
        logging.getLogger("elserve").error("%s", problem)
        raise typer.Exit(status)


def check_data_dir(data_dir: Path) -> bool:
    """True: serve read-only. A data directory that cannot be written is said in one log line; without
    a store that can be read either there is nothing to serve (exit 78, EX_CONFIG)."""
    from elserve.store import check_data_dir as look_at

    check = look_at(data_dir)
    log = logging.getLogger("elserve")
    if check.reserve_released:
        log.warning(
            "the disk holding the data directory [%s] is full: elserve gave back its reserve to start; free "
            "space on it (deleting unused models frees theirs)",
            data_dir,
        )
    if check.problem is None:
        return False
    if check.disk_full:
        log.error(
            "the disk holding the data directory [%s] is full (%s): free space on it, then start elserve again",
            data_dir,
            check.problem,
        )
        raise typer.Exit(75)  # EX_TEMPFAIL: the same start succeeds once there is room
    if check.readable_store:
        log.error(
            "the data directory [%s] cannot be written (%s): serving its state read-only; creating, changing "
            "or deleting endpoints, deployments and users answers 503 until it is writable and elserve restarts",
            data_dir,
            check.problem,
        )
        return True
    log.error(
        "the data directory [%s] cannot be written (%s) and holds no state to serve: make it writable "
        "by this user, or choose another with --data-dir",
        data_dir,
        check.problem,
    )
    raise typer.Exit(78)


def lock_data_dir(data_dir: Path, read_only: bool, checks_sqlite: bool = True) -> NodeLock:
    """The data directory's node lock, and (`checks_sqlite`: no `--store` names another) a SQLite store
    that can be read, or none yet: a fresh install. Held until the process exits; a second server, or
    an empty or unreadable store, exits 78 with one line."""
    from elserve.store import SqliteRepository
    from elserve.store.node_lock import DataDirLocked, NodeLock
    from elserve.store.sqlite import StoreUnreadable

    log = logging.getLogger("elserve")
    try:
        lock = NodeLock.acquire(data_dir)
    except DataDirLocked as exc:
        log.error("%s", exc)
        raise typer.Exit(78) from None
    try:
        if checks_sqlite:
            SqliteRepository(ServerSettings(data_dir=data_dir).store_path, read_only=read_only).close()
    except StoreUnreadable as exc:
        lock.release()
        log.error("%s", exc)
        raise typer.Exit(78) from None
    return lock
