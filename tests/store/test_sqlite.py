from pathlib import Path

from elserve.store import SqliteRepository


def test_crud_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    repo = SqliteRepository(path)
    assert repo.create("endpoint", "a", {"x": 1})
    assert not repo.create("endpoint", "a", {"x": 2})  # already there
    repo.put("endpoint", "b", {"y": [1, 2]})
    repo.put("user", "a", {"z": True})
    assert repo.get("endpoint", "a") == {"x": 1}
    assert repo.list("endpoint") == [("a", {"x": 1}), ("b", {"y": [1, 2]})]
    repo.close()
    reopened = SqliteRepository(path)
    assert reopened.get("endpoint", "b") == {"y": [1, 2]}
    assert reopened.delete("endpoint", "a")
    assert not reopened.delete("endpoint", "a")
    assert reopened.get("endpoint", "a") is None
    assert reopened.get("user", "a") == {"z": True}
