"""Persistence behind a small repository interface (SQLite by default)."""

from elserve.store.data_dir import DataDirCheck, check_data_dir
from elserve.store.lease import SCALER_LEASE, Lease, open_lease
from elserve.store.open_store import is_shared, open_store
from elserve.store.repository import Repository
from elserve.store.sqlite import SqliteRepository, StoreWriteError

__all__ = [
    "SCALER_LEASE",
    "DataDirCheck",
    "Lease",
    "Repository",
    "SqliteRepository",
    "StoreWriteError",
    "check_data_dir",
    "is_shared",
    "open_lease",
    "open_store",
]
