"""The data directory: owner-only files, the writability probe, and read-only serving."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from elserve.store import SqliteRepository, StoreWriteError, check_data_dir


def test_a_new_store_is_owner_only(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "data" / "elserve.db")
    repo.put("user", "elastic", {"hash": "x"})
    repo.close()
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for path in (tmp_path / "data").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_writable_dir_passes_the_probe(tmp_path: Path) -> None:
    check = check_data_dir(tmp_path / "new")
    assert check.problem is None
    assert list((tmp_path / "new").iterdir()) == []  # the probe leaves nothing behind


def test_a_dir_under_a_file_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    check = check_data_dir(tmp_path / "file" / "data")
    assert check.problem is not None and "NotADirectoryError" in check.problem
    assert not check.readable_store


def test_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "elserve.db"
    repo = SqliteRepository(path)
    repo.put("endpoint", "a", {"x": 1})
    repo.close()
    ro = SqliteRepository(path, read_only=True)
    assert ro.get("endpoint", "a") == {"x": 1}
    assert ro.list("endpoint") == [("a", {"x": 1})]
    for write in (
        lambda: ro.put("endpoint", "b", {}),
        lambda: ro.create("endpoint", "b", {}),
        lambda: ro.delete("endpoint", "a"),
    ):
        with pytest.raises(StoreWriteError):
            write()
    ro.close()
