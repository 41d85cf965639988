"""The shape of a BERT masked-LM model, read from its `config.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# config.json `hidden_act` values this runtime computes, mapped to torch's gelu `approximate`
# argument ("relu" kept apart). "gelu" is the exact erf form, as in BERT's original code.
ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "relu": "relu"}


class ModelFormatError(ValueError):
    """The model directory does not hold a BERT masked-LM model this runtime can run."""


@dataclass(frozen=True, slots=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise ModelFormatError(
                f"unsupported hidden_act [{self.hidden_act}]; supported: {sorted(ACTIVATIONS)}"
            )
        if self.num_attention_heads <= 0 or self.hidden_size % self.num_attention_heads:
            raise ModelFormatError(
                f"hidden_size [{self.hidden_size}] is not a multiple of "
                f"num_attention_heads [{self.num_attention_heads}]"
            )

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertConfig:
        model_type = raw.get("model_type", "bert")
        if model_type != "bert":
            raise ModelFormatError(f"unsupported model_type [{model_type}]; only [bert] is supported")
        # Relative position embeddings have extra weights and another attention formula.
        position_type = raw.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ModelFormatError(f"unsupported position_embedding_type [{position_type}]")
        required = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        )
        missing = [key for key in required if key not in raw]
        if missing:
            raise ModelFormatError(f"config.json lacks {missing}")
        optional = {
            key: raw[key]
            for key in ("type_vocab_size", "layer_norm_eps", "hidden_act", "pad_token_id")
            if raw.get(key) is not None
        }
        return cls(**{key: raw[key] for key in required}, **optional)


def read_config(model_dir: Path) -> BertConfig:
    """The `BertConfig` of the model in `model_dir`."""
    path = model_dir / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelFormatError(f"no config.json in [{model_dir}]") from e
    return BertConfig.from_dict(raw)
