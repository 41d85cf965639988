from __future__ import annotations

import json
import os
from pathlib import Path

from elserve.bench.base_model import BERT_BASE, BertShape, build_random_bert
from elserve.bench.onnx_export import onnx_path_for
from elserve.bench.server import descendants, plant_model, tree_peak_rss_bytes
from elserve.models.cache import ModelCache
from elserve.models.catalogue import Catalogue
from elserve.runtime import Encoder

SMALL = BertShape(layers=1, hidden=32, heads=2, intermediate=64, max_positions=512)


def test_bert_base_is_elser_v2_sized() -> None:
    assert (BERT_BASE.layers, BERT_BASE.hidden, BERT_BASE.heads, BERT_BASE.intermediate) == (12, 768, 12, 3072)


def test_a_random_model_loads_with_the_real_tokenizer_and_repeats(tmp_path: Path, splade_model_dir: Path) -> None:
    first = build_random_bert(tmp_path / "a", splade_model_dir, SMALL, seed=0)
    again = build_random_bert(tmp_path / "b", splade_model_dir, SMALL, seed=0)
    config = json.loads((first / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (1, 32, 30522)
    assert (first / "tokenizer.json").read_bytes() == (splade_model_dir / "tokenizer.json").read_bytes()
    assert (first / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    [(vector, truncated)] = Encoder.load(first).encode(["what is elser?"])
    assert len(vector) > 0 and not truncated
    assert not list(tmp_path.glob(".*partial"))


def test_a_finished_model_is_not_rebuilt(tmp_path: Path, splade_model_dir: Path) -> None:
    target = build_random_bert(tmp_path / "m", splade_model_dir, SMALL)
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    build_random_bert(target, splade_model_dir, SMALL, seed=1)
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_onnx_export_is_named_by_the_model_content(tmp_path: Path, splade_model_dir: Path) -> None:
    one = onnx_path_for(splade_model_dir, tmp_path)
    assert one == onnx_path_for(splade_model_dir, tmp_path)
    other = build_random_bert(tmp_path / "m", splade_model_dir, SMALL)
    assert onnx_path_for(other, tmp_path) != one
    assert one.parent == tmp_path and one.suffix == ".onnx"


def test_a_planted_model_is_what_the_cache_finds(tmp_path: Path, splade_model_dir: Path) -> None:
    planted = plant_model(splade_model_dir, tmp_path / "data")
    cache = ModelCache(tmp_path / "data" / "models")
    assert cache.path_for(Catalogue().get(".elser_model_2")) == planted
    assert (planted / "model.safetensors").resolve() == (splade_model_dir / "model.safetensors").resolve()


def test_the_peak_memory_of_a_process_tree(tmp_path: Path) -> None:
    assert tree_peak_rss_bytes(os.getpid()) > 10 * 1024 * 1024
    assert os.getpid() not in descendants(os.getpid())
    assert tree_peak_rss_bytes(2**22 + 12345) is None  # no such process
