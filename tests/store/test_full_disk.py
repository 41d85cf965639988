"""The store on a full disk (a small tmpfs; skipped, with the reason, where one cannot be mounted):
writes fail as a store write error, deletes still go through on the reserve, a start gives it back."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from elserve.store import SqliteRepository, StoreWriteError, check_data_dir
from elserve.store.data_dir import RESERVE_FILE
from tests.support.tmpfs import small_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "16m") as mount:
        yield mount


def _fill(disk: Path) -> None:
    with open(disk / "filler", "ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC


def test_deletes_go_through_on_a_full_disk(small_disk: Path) -> None:
    repo = SqliteRepository(small_disk / "elserve.db")
    for i in range(200):
        repo.put("doc", f"d{i}", {"text": "x" * 2000})
    assert (small_disk / RESERVE_FILE).is_file()
    _fill(small_disk)
    with pytest.raises(StoreWriteError, match="the disk is full"):
        for i in range(200, 2000):  # until the store's own slack is used up too
            repo.put("doc", f"d{i}", {"text": "y" * 20000})
    assert all(repo.delete("doc", f"d{i}") for i in range(50))
    assert not (small_disk / RESERVE_FILE).exists()  # the deletes needed it: given back
    assert repo.get("doc", "d0") is None and repo.get("doc", "d60") is not None
    repo.close()


def test_a_start_on_a_full_disk_gives_the_reserve_back(small_disk: Path) -> None:
    SqliteRepository(small_disk / "elserve.db").close()
    _fill(small_disk)
    check = check_data_dir(small_disk)
    assert check.problem is None and check.reserve_released
    _fill(small_disk)
    check = check_data_dir(small_disk)
    assert check.disk_full and check.problem is not None and "the disk is full" in check.problem
