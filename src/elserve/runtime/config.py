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
    """The model directory does not hold a masked-LM model this runtime can run (the reason is named)."""


BERT = "bert"
DISTILBERT = "distilbert"
ARCHITECTURES = (BERT, DISTILBERT)


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
    # `distilbert`: no token type embeddings (the runtime's single one is zeros), the same layers.
    architecture: str = BERT
    # DistilBERT's fixed sinusoidal positions, computed when a checkpoint does not store them.
    sinusoidal_positions: bool = False

    def __post_init__(self) -> None:
        if self.hidden_act not in ACTIVATIONS:
            raise ModelFormatError(f"unsupported hidden_act [{self.hidden_act}]; supported: {sorted(ACTIVATIONS)}")
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
        """From a Hugging Face `config.json` of a BERT or DistilBERT masked-LM; anything else is refused."""
        model_type = raw.get("model_type", BERT)
        if model_type not in ARCHITECTURES:
            raise ModelFormatError(
                f"unsupported model_type [{model_type}]; this runtime runs the {list(ARCHITECTURES)} architectures"
            )
        # A checkpoint of another task (sequence classification, a bare encoder) lacks the MLM head
        # SPLADE pools over.
        architectures = raw.get("architectures") or []
        others = [a for a in architectures if not a.endswith("ForMaskedLM")]
        if others:
            raise ModelFormatError(
                f"architecture {others} is not a masked-LM; SPLADE needs the masked-LM head (e.g. "
                f"[{'DistilBertForMaskedLM' if model_type == DISTILBERT else 'BertForMaskedLM'}])"
            )
        if model_type == DISTILBERT:
            return cls._from_distilbert(raw)
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

    @classmethod
    def _from_distilbert(cls, raw: dict[str, Any]) -> BertConfig:
        # transformers' DistilBertConfig names; its LayerNorms use eps 1e-12 whatever the config says.
        names = {
            "vocab_size": "vocab_size",
            "hidden_size": "dim",
            "num_hidden_layers": "n_layers",
            "num_attention_heads": "n_heads",
            "intermediate_size": "hidden_dim",
            "max_position_embeddings": "max_position_embeddings",
        }
        missing = [theirs for theirs in names.values() if theirs not in raw]
        if missing:
            raise ModelFormatError(f"config.json lacks {missing}")
        return cls(
            **{ours: raw[theirs] for ours, theirs in names.items()},
            type_vocab_size=1,
            layer_norm_eps=1e-12,
            hidden_act=raw.get("activation") or "gelu",
            pad_token_id=raw.get("pad_token_id") or 0,
            architecture=DISTILBERT,
            sinusoidal_positions=bool(raw.get("sinusoidal_pos_embds", False)),
        )


# An inference-free sparse encoder (OpenSearch's `opensearch-neural-sparse-encoding-doc-*`) encodes
# queries by looking their tokens up in this table, not by the model: serving its masked-LM for
# queries too would give vectors the model was never trained to match.
IDF_FILE = "idf.json"


def read_config(model_dir: Path) -> BertConfig:
    """The `BertConfig` of the Hugging Face model in `model_dir`."""
    if (model_dir / IDF_FILE).exists():
        raise ModelFormatError(
            f"[{model_dir}] is an inference-free sparse encoder: its query side is an IDF table "
            f"([{IDF_FILE}]), which this runtime does not serve"
        )
    path = model_dir / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelFormatError(f"no config.json in [{model_dir}]") from e
    return BertConfig.from_dict(raw)
