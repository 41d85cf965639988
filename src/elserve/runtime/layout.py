"""The two layouts of an installed model directory, told apart by the files present.

- **Hugging Face** (`HF`): `config.json` (`model_type` bert | distilbert), `model.safetensors`, and
  `tokenizer.json` or, for checkpoints without one, `vocab.txt` (with an optional
  `tokenizer_config.json` for `do_lower_case` and `model_max_length`).
- **Elastic** (`ELASTIC`): `model.pt` (TorchScript, as eland traces it or Elastic's model repository
  ships it), `vocab.json` (Elastic's vocabulary file: `{"vocabulary": [...]}`, optional `merges` and
  `scores`) and `trained_model_config.json` (the trained model configuration, as the body of
  Elasticsearch's `PUT _ml/trained_models/{id}` or the repository's `<model>.metadata.json` carry it).

The model sources (`models/`) write these very names; the runtime reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from elserve.runtime.config import ModelFormatError

# Hugging Face layout.
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_TOKENIZER = "tokenizer.json"
HF_VOCAB = "vocab.txt"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
HF_SPECIAL_TOKENS = "special_tokens_map.json"
HF_FILES = (HF_CONFIG, HF_WEIGHTS, HF_TOKENIZER, HF_VOCAB, HF_TOKENIZER_CONFIG, HF_SPECIAL_TOKENS)

# Elastic layout.
ELASTIC_MODEL = "model.pt"
ELASTIC_VOCAB = "vocab.json"
ELASTIC_CONFIG = "trained_model_config.json"
ELASTIC_FILES = (ELASTIC_MODEL, ELASTIC_VOCAB, ELASTIC_CONFIG)

HF: Literal["hf"] = "hf"
ELASTIC: Literal["elastic"] = "elastic"
Layout = Literal["hf", "elastic"]


def missing_names(present: set[str]) -> list[str]:
    """The files a directory holding `present` lacks: for the Elastic layout when it has `model.pt`,
    else for Hugging Face's (one tokenizer file of two)."""
    if ELASTIC_MODEL in present:
        return [name for name in ELASTIC_FILES if name not in present]
    missing = [name for name in (HF_CONFIG, HF_WEIGHTS) if name not in present]
    if HF_TOKENIZER not in present and HF_VOCAB not in present:
        missing.append(f"{HF_TOKENIZER} or {HF_VOCAB}")
    return missing


def layout_of(model_dir: Path) -> Layout:
    """`hf` or `elastic`, by the files present; a `ModelFormatError` naming what is missing for neither."""
    if not model_dir.is_dir():
        raise ModelFormatError(f"model directory [{model_dir}] does not exist")
    present = {p.name for p in model_dir.iterdir()}
    missing = missing_names(present)
    if ELASTIC_MODEL in present:
        if missing:
            raise ModelFormatError(f"[{model_dir}] holds [{ELASTIC_MODEL}] but lacks {missing} (Elastic layout)")
        return ELASTIC
    if missing:
        raise ModelFormatError(
            f"[{model_dir}] is neither a Hugging Face model directory (lacks {missing}) nor an Elastic one "
            f"({list(ELASTIC_FILES)})"
        )
    return HF
