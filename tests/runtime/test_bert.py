"""Loading BERT checkpoints (every naming style), and the forward against transformers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from elserve.bench.base_model import bert_init
from elserve.runtime import Encoder, ModelFormatError
from elserve.runtime.bert import load_bert
from tests.runtime.reference import assert_matches_reference, fp32_rounding, reference_model, reference_weights
from tests.support.model_factory import build_bert_dir

TEXTS = ["", "a", "hello w1 w2 w3, e.g. 42!", "the quick brown fox " * 5, "zzz " * 40, "中 😀 ..."]


def _vectors(model_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    encoder = Encoder.load(model_dir)
    return [(v.indices, v.weights) for v, _ in encoder.encode(TEXTS)]


def _check_against_transformers(model_dir: Path) -> None:
    encoder = Encoder.load(model_dir)
    reference = reference_model(model_dir)
    ids = [e.ids for e in encoder.tokenize(TEXTS)]
    for vector, want in zip(encoder.encode_ids(ids), reference_weights(reference, ids), strict=True):
        assert_matches_reference(vector, want)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tied_decoder": False},
        {"hidden_act": "relu"},
        {"hidden_act": "gelu_pytorch_tanh"},
        {"layers": 3, "hidden": 48, "heads": 4, "intermediate": 100},
        {"layers": 1, "hidden": 512, "heads": 8, "intermediate": 1024},
    ],
    ids=["tied", "untied", "relu", "gelu-tanh", "odd-shape", "packed-linears"],
)
def test_forward_matches_transformers(tmp_path: Path, options: dict) -> None:
    _check_against_transformers(build_bert_dir(tmp_path, **options))


@pytest.mark.parametrize(
    "naming", [{"legacy_norm_names": False}, {"bert_prefix": False}, {"legacy_norm_names": False, "bert_prefix": False}]
)
def test_every_naming_style_loads_the_same_model(tmp_path: Path, naming: dict) -> None:
    # Same seed, same draws: only the key names differ.
    legacy = _vectors(build_bert_dir(tmp_path / "legacy"))
    renamed = _vectors(build_bert_dir(tmp_path / "renamed", **naming))
    for (i1, w1), (i2, w2) in zip(legacy, renamed, strict=True):
        assert np.array_equal(i1, i2) and np.array_equal(w1, w2)


def test_tied_decoder_shares_the_embeddings(tmp_path: Path) -> None:
    model = load_bert(build_bert_dir(tmp_path))
    assert model.decoder_weight.data_ptr() == model.embeddings.word.weight.data_ptr()
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())


WeightsChange = Callable[[dict[str, torch.Tensor]], object]


def _rewrite_weights(model_dir: Path, change: WeightsChange) -> None:
    path = model_dir / "model.safetensors"
    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path))


def test_unused_checkpoint_weights_are_ignored(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path / "plus")
    before = _vectors(build_bert_dir(tmp_path / "plain"))

    def add_unused(weights: dict[str, torch.Tensor]) -> None:
        weights["bert.pooler.dense.weight"] = torch.zeros(32, 32)
        weights["bert.pooler.dense.bias"] = torch.zeros(32)
        weights["cls.seq_relationship.weight"] = torch.zeros(2, 32)
        weights["bert.embeddings.position_ids"] = torch.arange(64)[None]

    _rewrite_weights(model_dir, add_unused)
    for (i1, w1), (i2, w2) in zip(before, _vectors(model_dir), strict=True):
        assert np.array_equal(i1, i2) and np.array_equal(w1, w2)


def test_half_precision_checkpoint_runs_in_fp32(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path)
    _rewrite_weights(model_dir, lambda w: w.update({k: v.half() for k, v in w.items()}))
    assert all(p.dtype == torch.float32 for p in load_bert(model_dir).parameters())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w.update({"bert.encoder.layer.0.crossattention.dense.weight": torch.zeros(1)}), "unexpected weight"),
        (lambda w: w.pop("bert.encoder.layer.1.output.dense.bias"), "do not match config.json"),
        (lambda w: w.update({"cls.predictions.bias": torch.zeros(7)}), "do not match config.json"),
    ],
    ids=["unexpected", "missing", "wrong-shape"],
)
def test_bad_weights_are_refused(tmp_path: Path, change: WeightsChange, message: str) -> None:
    model_dir = build_bert_dir(tmp_path)
    _rewrite_weights(model_dir, change)
    with pytest.raises(ModelFormatError, match=message):
        load_bert(model_dir)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model_type", "roberta", r"unsupported model_type \[roberta\]"),
        ("position_embedding_type", "relative_key", r"unsupported position_embedding_type \[relative_key\]"),
        ("hidden_act", "swish", r"unsupported hidden_act \[swish\]"),
        ("num_attention_heads", 3, r"hidden_size \[32\] is not a multiple of num_attention_heads \[3\]"),
        ("vocab_size", None, r"config.json lacks \['vocab_size'\]"),
    ],
)
def test_unsupported_configs_are_refused(tmp_path: Path, key: str, value: object, message: str) -> None:
    model_dir = build_bert_dir(tmp_path)
    config = json.loads((model_dir / "config.json").read_text())
    if value is None:
        del config[key]
    else:
        config[key] = value
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=message):
        load_bert(model_dir)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path)
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match=r"no \[model.safetensors\]"):
        load_bert(model_dir)
    (model_dir / "config.json").unlink()
    with pytest.raises(ModelFormatError, match=r"no config\.json"):
        load_bert(model_dir)


def test_packed_linears_are_a_copy_with_the_same_outputs(tmp_path: Path) -> None:
    # hidden 512: the 512 x 512 and 512 x 1024 weights are packed, the small ones stay plain.
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=512, heads=8, intermediate=1024))
    packed = model.with_packed_linears()
    layer, plain = packed.layers[0], model.layers[0]
    assert type(layer.qkv).__name__ == "_PackedLinear" and type(layer.output).__name__ == "_PackedLinear"
    assert isinstance(plain.qkv, torch.nn.Linear)  # the model itself is left as it was
    assert packed.embeddings.word.weight is model.embeddings.word.weight  # shared, not copied
    assert packed.decoder_weight is model.decoder_weight
    ids = torch.randint(5, 200, (3, 9), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([9, 4, 1])
    with torch.inference_mode():
        want = model.transform(model.encode(ids, lengths))
        got = packed.transform(packed.encode(ids, lengths))
    real = torch.arange(9) < lengths[:, None]
    # The longest sum is the 1,024-wide intermediate; packed kernels add in another order.
    torch.testing.assert_close(got[real], want[real], atol=fp32_rounding(want[real], 1024), rtol=0)
    small = load_bert(build_bert_dir(tmp_path / "small"))
    assert isinstance(small.with_packed_linears().layers[0].qkv, torch.nn.Linear)


@pytest.mark.slow
def test_bert_base_shape_matches_transformers(tmp_path: Path) -> None:
    # 12 layers x 768 hidden, 12 heads, 512 positions: the shape of ELSER v2's BERT-base, with
    # BERT's initialisation (the small models' wide one blows activations up through 12 layers,
    # until fp32 rounding in another summation order -- the packed linears' -- reaches 1e-4).
    shape = {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "max_positions": 512}
    _check_against_transformers(build_bert_dir(tmp_path, **shape, init=bert_init(768)))
