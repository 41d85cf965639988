"""ModelRegistry: imported and uploaded models kept in the real SQLite store."""

from __future__ import annotations

from pathlib import Path

from elserve.models.registry import KIND, ModelRegistry, RegisteredModel
from elserve.store import SqliteRepository

CONFIG = {
    "description": "SPLADE v3",
    "input": {"field_names": ["text_field"]},
    "inference_config": {"text_expansion": {"tokenization": {"bert": {"do_lower_case": True}}}},
}


def test_add_get_list_put_remove_and_reopen(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "elserve.db")
    registry = ModelRegistry(repo)
    assert registry.get("my-splade") is None and registry.list() == []
    uploaded = RegisteredModel("uploaded", CONFIG)  # a REST upload: no source, not yet fully defined
    imported = RegisteredModel(
        "my-splade",
        CONFIG,
        source="hf:naver/splade-v3@0123abcd",
        sha256="a" * 64,
        cache_key="a" * 64,
        fully_defined=True,
    )
    assert registry.add(uploaded) and registry.add(imported)
    assert not registry.add(RegisteredModel("my-splade", {}))  # the id is taken: nothing replaced
    assert registry.get("my-splade") == imported
    assert [m.model_id for m in registry.list()] == ["my-splade", "uploaded"]
    assert uploaded.create_time > 0 and not uploaded.fully_defined and uploaded.cache_key is None

    registry.put(
        RegisteredModel("uploaded", CONFIG, cache_key="b" * 64, fully_defined=True, create_time=uploaded.create_time)
    )
    repo.close()
    reopened = ModelRegistry(SqliteRepository(tmp_path / "elserve.db"))
    again = reopened.get("uploaded")
    assert again is not None and again.fully_defined and again.cache_key == "b" * 64
    assert again.create_time == uploaded.create_time and again.config == CONFIG
    assert reopened.remove("uploaded") and not reopened.remove("uploaded")
    assert [m.model_id for m in reopened.list()] == ["my-splade"]


def test_document_round_trip_and_lenient_read(tmp_path: Path) -> None:
    model = RegisteredModel("m", CONFIG, source="file:/models/m", sha256=None, create_time=5)
    assert RegisteredModel.from_doc(model.to_doc()) == model
    repo = SqliteRepository(tmp_path / "elserve.db")
    # a document written by an older version: only the id
    repo.put(KIND, "old", {"model_id": "old"})
    old = ModelRegistry(repo).get("old")
    assert old == RegisteredModel("old", {}, create_time=0)
