"""A randomly initialised model of ELSER v2's size (BERT-base), to show how cost scales.

Seeded random weights in safetensors beside the real model's tokenizer files, written once into
the data directory. The weights follow BERT's initialisation (normal, std 0.02, LayerNorm at
one), and the MLM bias is set so that vectors come out about as sparse as a trained SPLADE's
(a few hundred tokens for a passage): sparsification costs what it would in a real model.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class BertShape:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int = 512

    @property
    def name(self) -> str:
        return f"bert-l{self.layers}-h{self.hidden}-a{self.heads}-i{self.intermediate}"


# ELSER v2 is a BERT-base: 12 layers, hidden 768, 12 heads, feed-forward 3072.
BERT_BASE = BertShape(layers=12, hidden=768, heads=12, intermediate=3072)

_INIT_STD = 0.02  # BERT's initializer_range
# The MLM bias ~ N(mean, std) in units of a logit's spread, which with tied decoder rows of std
# 0.02 is about 0.02 * sqrt(hidden): these leave ~150 positive entries for a 120-token passage
# (measured at hidden 768; the same sparsity at other sizes, roughly).
_BIAS_MEAN, _BIAS_STD = -4.7, 0.9


def build_random_bert(target: Path, tokenizer_dir: Path, shape: BertShape = BERT_BASE, seed: int = 0) -> Path:
    """Write the model into `target` unless a complete one is there; return `target`.

    `tokenizer_dir` gives tokenizer.json and tokenizer_config.json (and so the vocabulary).
    Assembled in a scratch directory and renamed, so an interrupted build is rebuilt.
    """
    if (target / "model.safetensors").is_file():
        return target
    vocab = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    config = {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": len(vocab),
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": shape.max_positions,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
        "pad_token_id": vocab.get("[PAD]", 0),
        "tie_word_embeddings": True,
        "initializer_range": _INIT_STD,
        "dtype": "float32",
    }
    scratch = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        (scratch / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        save_file(random_weights(config, seed), str(scratch / "model.safetensors"))
        for name in TOKENIZER_FILES:
            shutil.copyfile(tokenizer_dir / name, scratch / name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@dataclass(frozen=True)
class Init:
    """How `random_weights` draws a checkpoint: a normal(mean, std) per kind of tensor, where a
    std of 0 gives the constant without drawing (so the other draws stay where they were)."""

    linear_std: float = _INIT_STD
    linear_bias_std: float = 0.0  # mean 0
    norm_std: float = 0.0  # LayerNorm weight around 1, bias around 0
    embedding_std: float = _INIT_STD
    mlm_bias_mean: float = 0.0
    mlm_bias_std: float = 0.0
    decoder_std: float = 0.0  # an untied decoder's own rows


def bert_init(hidden: int) -> Init:
    """BERT's own initialisation, with the MLM bias that makes vectors about as sparse as a trained
    SPLADE's."""
    spread = _INIT_STD * hidden**0.5
    return Init(mlm_bias_mean=_BIAS_MEAN * spread, mlm_bias_std=_BIAS_STD * spread)


def random_weights(
    config: dict,
    seed: int,
    init: Init | None = None,
    *,
    bert_prefix: bool = True,
    legacy_norm_names: bool = False,
    tied_decoder: bool = True,
) -> dict[str, torch.Tensor]:
    """A BertForMaskedLM state dict, seeded, in the checkpoint's own names: under `bert.` or not,
    LayerNorm as weight/bias or the legacy gamma/beta, the decoder tied to the word embeddings or
    saved with its own rows. `init` defaults to `bert_init`."""
    init = bert_init(config["hidden_size"]) if init is None else init
    g = torch.Generator().manual_seed(seed)
    d, inner, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    encoder = "bert." if bert_prefix else ""
    norm_names = ("gamma", "beta") if legacy_norm_names else ("weight", "bias")
    weights: dict[str, torch.Tensor] = {}

    def normal(*size: int, std: float, mean: float = 0.0) -> torch.Tensor:
        if std == 0:
            return torch.full(size, mean)
        return torch.randn(*size, generator=g) * std + mean

    def linear(name: str, n_out: int, n_in: int) -> None:
        weights[f"{name}.weight"] = normal(n_out, n_in, std=init.linear_std)
        weights[f"{name}.bias"] = normal(n_out, std=init.linear_bias_std)

    def layer_norm(name: str, size: int) -> None:
        weights[f"{name}.{norm_names[0]}"] = normal(size, std=init.norm_std, mean=1.0)
        weights[f"{name}.{norm_names[1]}"] = normal(size, std=init.norm_std)

    for name, rows in (
        ("word", vocab),
        ("position", config["max_position_embeddings"]),
        ("token_type", config["type_vocab_size"]),
    ):
        weights[f"{encoder}embeddings.{name}_embeddings.weight"] = normal(rows, d, std=init.embedding_std)
    layer_norm(f"{encoder}embeddings.LayerNorm", d)
    for i in range(config["num_hidden_layers"]):
        prefix = f"{encoder}encoder.layer.{i}"
        for part in ("query", "key", "value"):
            linear(f"{prefix}.attention.self.{part}", d, d)
        linear(f"{prefix}.attention.output.dense", d, d)
        layer_norm(f"{prefix}.attention.output.LayerNorm", d)
        linear(f"{prefix}.intermediate.dense", inner, d)
        linear(f"{prefix}.output.dense", d, inner)
        layer_norm(f"{prefix}.output.LayerNorm", d)
    linear("cls.predictions.transform.dense", d, d)
    layer_norm("cls.predictions.transform.LayerNorm", d)
    weights["cls.predictions.bias"] = normal(vocab, std=init.mlm_bias_std, mean=init.mlm_bias_mean)
    if not tied_decoder:
        weights["cls.predictions.decoder.weight"] = normal(vocab, d, std=init.decoder_std)
        weights["cls.predictions.decoder.bias"] = weights["cls.predictions.bias"].clone()
    return weights
