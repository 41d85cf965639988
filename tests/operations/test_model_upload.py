"""Uploads on the real store and model cache: parts staged whole, resumed across a restart,
assembled into the cache under their sha256, resolved by the catalogue, refused when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elserve.errors import ActionRequestValidationException, ElasticsearchError, StatusException
from elserve.models.cache import MARKER, ModelCache
from elserve.models.catalogue import Catalogue
from elserve.models.registry import ModelRegistry
from elserve.operations.model_upload import ModelUploads
from elserve.operations.trained_model_config import parse_put_config
from elserve.runtime.layout import ELASTIC, layout_of
from elserve.store import SqliteRepository
from tests.support.model_factory import build_torchscript_dir, default_vocab

CONFIG = {
    "model_type": "pytorch",
    "inference_config": {"text_expansion": {"tokenization": {"bert": {"do_lower_case": True}}}},
}


@pytest.fixture(scope="module")
def definition(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return (build_torchscript_dir(tmp_path_factory.mktemp("ts") / "m") / "model.pt").read_bytes()


def _open(tmp_path: Path) -> tuple[ModelUploads, Catalogue, ModelCache, SqliteRepository]:
    repo = SqliteRepository(tmp_path / "elserve.db")
    registry = ModelRegistry(repo)
    cache = ModelCache(tmp_path / "models")
    return ModelUploads(registry, cache, tmp_path / "model-uploads"), Catalogue(registry=registry), cache, repo


def test_parts_survive_a_restart_and_the_model_is_installed_once_complete(tmp_path: Path, definition: bytes) -> None:
    uploads, catalogue, cache, repo = _open(tmp_path)
    size = -(-len(definition) // 3)
    uploads.create(parse_put_config("up", dict(CONFIG)))
    thirds = [definition[i : i + size] for i in range(0, len(definition), size)]
    uploads.put_part("up", 2, thirds[2], len(definition), 3)
    uploads.put_part("up", 0, thirds[0], len(definition), 3)
    assert catalogue.resolve("up") is None and uploads.announced_length("up") == len(definition)
    repo.close()

    uploads, catalogue, cache, repo = _open(tmp_path)  # a restart: the staged parts are still there
    uploads.put_vocabulary("up", default_vocab(), None, None)
    assert catalogue.resolve("up") is None  # part 1 is missing
    uploads.put_part("up", 1, thirds[1], len(definition), 3)
    spec = catalogue.get("up")
    path = cache.path_for(spec)
    assert path is not None and (path / MARKER).is_file() and layout_of(path) == ELASTIC
    assert (path / "model.pt").read_bytes() == definition
    assert json.loads((path / "vocab.json").read_text())["vocabulary"] == default_vocab()
    installed = json.loads((path / "trained_model_config.json").read_text())
    assert "model_id" not in installed and installed["input"] == {"field_names": ["input"]}  # PyTorch's default
    assert not (tmp_path / "model-uploads" / "up").exists()
    assert "up" in catalogue.model_ids()

    uploads.delete("up")
    assert catalogue.resolve("up") is None and not path.exists()
    repo.close()


def test_parts_that_do_not_add_up_are_refused(tmp_path: Path) -> None:
    uploads, catalogue, _, repo = _open(tmp_path)
    uploads.create(parse_put_config("short", dict(CONFIG)))
    uploads.put_vocabulary("short", ["[UNK]", "[CLS]", "[SEP]"], None, None)
    with pytest.raises(StatusException, match=r"hold \[10\] bytes, not the total_definition_length \[11\]"):
        uploads.put_part("short", 0, b"0123456789", 11, 1)
    assert catalogue.resolve("short") is None
    with pytest.raises(ActionRequestValidationException, match=r"\[part\] must be less than total_parts"):
        uploads.put_part("short", 1, b"x", 11, 1)
    with pytest.raises(ActionRequestValidationException, match=r"\[scores\] must have same length as \[vocabulary\]"):
        uploads.put_vocabulary("short", ["a", "b"], None, [1.0])
    repo.close()


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        ({**CONFIG, "model_id": "other"}, "action_request_validation_exception", "Inconsistent model_id; 'other'"),
        ({**CONFIG, "create_time": 1}, "action_request_validation_exception", r"illegal to set \[create_time\]"),
        ({**CONFIG, "tags": ["Bad"]}, "action_request_validation_exception", r"Invalid tags \[Bad\]"),
        ({**CONFIG, "input": {"field_names": []}}, "action_request_validation_exception", "must not be empty"),
        ({**CONFIG, "foo": 1}, "x_content_parse_exception", r"\[trained_model_config\] unknown field \[foo\]"),
        (
            {**CONFIG, "descripton": "x"},
            "x_content_parse_exception",
            r"^\[trained_model_config\] unknown field \[descripton\] did you mean \[description\]\?$",
        ),
        ({**CONFIG, "model_type": "tree_ensemble"}, "status_exception", r"only \[pytorch\] models"),
        ({**CONFIG, "model_type": "linear"}, "x_content_parse_exception", r"failed to parse field \[model_type\]"),
        (  # Elasticsearch's own tests PUT tree ensembles so: no model_type, a definition inline
            {"inference_config": {"regression": {}}, "definition": {"trained_model": {"tree": {}}}},
            "status_exception",
            r"model \[my-model\] is \[tree_ensemble\] with an inline definition",
        ),
        (
            {**CONFIG, "inference_config": {"text_expansion": {"vocabulary": {"index": "x"}}}},
            "status_exception",
            r"illegal setting \[vocabulary\] on inference model creation",
        ),
        (
            {**CONFIG, "inference_config": {"text_expansion": {"tokenization": {"roberta": {}}}}},
            "status_exception",
            r"only \[bert\] \(WordPiece\) tokenization",
        ),
        (
            {**CONFIG, "inference_config": {"text_expansion": {"tokenization": {"bert": {"lower": True}}}}},
            "x_content_parse_exception",
            r"\[bert\] unknown field \[lower\]",
        ),
    ],
)
def test_configuration_rules(body: dict, error: str, reason: str) -> None:
    with pytest.raises(ElasticsearchError, match=reason) as raised:
        parse_put_config("my-model", body)
    assert raised.value.type == error


def test_configuration_defaults_are_filled_in() -> None:
    config = parse_put_config("my-model", {"model_type": "pytorch", "inference_config": {"text_expansion": {}}})
    assert config["input"] == {"field_names": ["input"]}  # TrainedModelType.PYTORCH's default
    assert config["inference_config"]["text_expansion"]["tokenization"] == {
        "bert": {
            "do_lower_case": False,
            "with_special_tokens": True,
            "max_sequence_length": 512,
            "truncate": "first",
            "span": -1,
        }
    }


def test_an_upload_installed_without_its_shapes_is_sized_in_a_child_at_start(tmp_path: Path, definition: bytes) -> None:
    """Installs made before the check recorded shapes: `recover` finds them, `resume` records them
    (read by the check's child process, so that the server never loads the model to size it)."""
    from elserve.runtime.memory import SHAPES_FILE, estimate_memory

    uploads, catalogue, cache, repo = _open(tmp_path)
    uploads.create(parse_put_config("sized", dict(CONFIG)))
    uploads.put_part("sized", 0, definition, len(definition), 1)
    uploads.put_vocabulary("sized", default_vocab(), None, None)
    path = cache.path_for(catalogue.get("sized"))
    assert path is not None
    shapes = json.loads((path / SHAPES_FILE).read_text())
    assert shapes["vocab"] == len(default_vocab())
    (path / SHAPES_FILE).unlink()
    repo.close()

    uploads, catalogue, cache, repo = _open(tmp_path)
    assert uploads.recover() == ["sized"]
    uploads.resume("sized")
    assert json.loads((path / SHAPES_FILE).read_text()) == shapes
    assert estimate_memory(path, 4096).weights_bytes > 0
    repo.close()
