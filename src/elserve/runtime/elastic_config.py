"""What the runtime reads of an Elastic-layout model's configuration and vocabulary files.

`trained_model_config.json` is the trained model configuration (the body of Elasticsearch's
`PUT _ml/trained_models/{id}`); its `inference_config.text_expansion.tokenization` names the
tokenizer and its settings (`BertTokenization.java`: `do_lower_case` false, `with_special_tokens`
true, `max_sequence_length` 512 by default). `vocab.json` is Elastic's vocabulary file:
`{"vocabulary": [...]}` (id -> token), with `merges` for BPE and `scores` for unigram tokenizers,
which only other tokenizations use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elserve.runtime.config import ModelFormatError
from elserve.runtime.layout import ELASTIC_CONFIG, ELASTIC_VOCAB

TEXT_EXPANSION = "text_expansion"
# A model whose output is returned as it is (`PassThroughConfig.java`): its tokenization is read the same way.
PASS_THROUGH = "pass_through"
TASKS = (TEXT_EXPANSION, PASS_THROUGH)
# The tokenizations Elasticsearch knows; only `bert` (BERT's WordPiece, which eland also writes for
# DistilBERT models) is run here: the others split text another way (BPE, unigram, MeCab).
TOKENIZATIONS = ("bert", "bert_ja", "mpnet", "roberta", "xlm_roberta", "deberta_v2")
SUPPORTED_TOKENIZATION = "bert"
DEFAULT_MAX_SEQUENCE_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Tokenization:
    do_lower_case: bool = False
    with_special_tokens: bool = True
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH
    truncate: str = "first"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelFormatError(f"no [{path.name}] in [{path.parent}]") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"[{path}] is not JSON: {e}") from e


def read_config(model_dir: Path) -> dict[str, Any]:
    raw = _read_json(model_dir / ELASTIC_CONFIG)
    if not isinstance(raw, dict):
        raise ModelFormatError(f"[{model_dir / ELASTIC_CONFIG}] is not a JSON object")
    return raw


def task_of(config: dict[str, Any]) -> str:
    """The configuration's task, one of `TASKS`; a `ModelFormatError` naming another."""
    inference = config.get("inference_config") or {}
    task = next((t for t in TASKS if isinstance(inference, dict) and t in inference), None)
    if task is None:
        tasks = list(inference) if isinstance(inference, dict) else inference
        raise ModelFormatError(f"the model's inference_config is {tasks}, not one of {list(TASKS)}")
    return task


def tokenization_of(config: dict[str, Any]) -> Tokenization:
    """The tokenization of a `text_expansion` or `pass_through` configuration; a `ModelFormatError`
    naming the reason for another task or tokenizer."""
    task = task_of(config)
    tokenization = (config["inference_config"][task] or {}).get("tokenization") or {SUPPORTED_TOKENIZATION: {}}
    if not isinstance(tokenization, dict) or len(tokenization) != 1:
        raise ModelFormatError(f"[tokenization] must name one tokenizer of {list(TOKENIZATIONS)}")
    ((name, settings),) = tokenization.items()
    if name != SUPPORTED_TOKENIZATION:
        raise ModelFormatError(
            f"tokenization [{name}] is not supported; this runtime runs [{SUPPORTED_TOKENIZATION}] (WordPiece) models"
        )
    settings = settings or {}
    max_length = settings.get("max_sequence_length", DEFAULT_MAX_SEQUENCE_LENGTH)
    if not isinstance(max_length, int) or max_length < 2:
        raise ModelFormatError(f"[max_sequence_length] must be an integer of at least 2, got [{max_length}]")
    return Tokenization(
        do_lower_case=bool(settings.get("do_lower_case", False)),
        with_special_tokens=bool(settings.get("with_special_tokens", True)),
        max_sequence_length=max_length,
        truncate=str(settings.get("truncate", "first")),
    )


def read_tokenization(model_dir: Path) -> Tokenization:
    return tokenization_of(read_config(model_dir))


def vocabulary_of(raw: Any, where: str) -> list[str]:
    """The `vocabulary` list of an Elastic vocabulary document."""
    vocabulary = raw.get("vocabulary") if isinstance(raw, dict) else None
    if not isinstance(vocabulary, list) or not vocabulary or not all(isinstance(t, str) for t in vocabulary):
        raise ModelFormatError(f"[{where}] must hold a non-empty [vocabulary] list of strings")
    return vocabulary


def read_vocabulary(model_dir: Path) -> list[str]:
    path = model_dir / ELASTIC_VOCAB
    return vocabulary_of(_read_json(path), str(path))


def read_task(model_dir: Path) -> str:
    return task_of(read_config(model_dir))
