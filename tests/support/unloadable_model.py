"""A model directory whose files read but whose model cannot load: what makes a deployment's workers fail
at start with real processes (no mock).

The tokenizer and the weights' header are whole, so the server reads the vocabulary and sizes the model;
only the model's parent, loading the weights into the layers `config.json` asks for, fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.model_factory import build_bert_dir


def build_unloadable_dir(path: Path, seed: int = 7) -> Path:
    """A small random BERT (tests/support/model_factory.py) whose `config.json` then asks for one layer more than
    its weights hold."""
    build_bert_dir(path, seed=seed)
    config_file = path / "config.json"
    config = json.loads(config_file.read_text())
    config["num_hidden_layers"] += 1
    config_file.write_text(json.dumps(config, indent=2))
    return path
