"""The TorchScript and DistilBERT builders give what transformers' own classes compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.support.model_factory import build_distilbert_dir, build_torchscript_dir, torchscript_reference


@pytest.mark.parametrize("architecture", ["bert", "distilbert"])
def test_torchscript_answers_the_reference_logits_at_any_length(tmp_path: Path, architecture: str) -> None:
    from transformers import AutoModelForMaskedLM

    model_dir = build_torchscript_dir(tmp_path / "model", architecture=architecture)
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.pt", "trained_model_config.json", "vocab.json"]
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    assert config["inference_config"]["text_expansion"]["tokenization"]["bert"]["max_sequence_length"] == 64
    traced = torch.jit.load(str(model_dir / "model.pt"))
    reference = AutoModelForMaskedLM.from_pretrained(torchscript_reference(model_dir)).eval()
    # Traced on one text padded to 64 tokens; run on two of 7.
    ids = torch.tensor([[2, 40, 41, 42, 3, 0, 0], [2, 50, 51, 52, 53, 54, 3]])
    mask = (ids != 0).long()
    (logits,) = traced(ids, mask, torch.zeros_like(ids), torch.arange(7))
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (2, 7, len(json.loads((model_dir / "vocab.json").read_text())["vocabulary"]))
    assert torch.allclose(logits[mask.bool()], expected[mask.bool()], atol=1e-5)


def test_distilbert_dir_is_transformers_own(tmp_path: Path) -> None:
    from transformers import AutoModelForMaskedLM

    model_dir = build_distilbert_dir(tmp_path / "d", vocab_txt_only=True, sinusoidal=True)
    assert (model_dir / "vocab.txt").exists() and not (model_dir / "tokenizer.json").exists()
    model, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    assert type(model).__name__ == "DistilBertForMaskedLM"
    assert not info["missing_keys"] and not info["mismatched_keys"]
