"""Uploading a TorchScript model as eland does, over raw HTTP (its configuration, its definition in
base64 parts, its vocabulary), and the reference vector of a text for such a model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np

from tests.runtime.reference import reference_model, reference_weights
from tests.support.model_factory import torchscript_reference

# How many parts a definition is cut into.
PARTS = 3


def definition_parts(model_dir: Path) -> list[bytes]:
    data = (model_dir / "model.pt").read_bytes()
    size = -(-len(data) // PARTS)
    return [data[i : i + size] for i in range(0, len(data), size)]


def put_part(
    http: httpx.Client, model_id: str, part: int, data: bytes, total_length: int, total_parts: int = PARTS
) -> httpx.Response:
    body = {
        "definition": base64.b64encode(data).decode(),
        "total_definition_length": total_length,
        "total_parts": total_parts,
    }
    return http.put(f"/_ml/trained_models/{model_id}/definition/{part}", json=body)


def upload_model(http: httpx.Client, model_id: str, model_dir: Path) -> None:
    """The whole upload of `model_dir` (tests/support/model_factory.py's `build_torchscript_dir`), each
    answer checked."""
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    r = http.put(f"/_ml/trained_models/{model_id}", json=config)
    assert r.status_code == 200, r.text
    assert r.json()["model_id"] == model_id and r.json()["model_type"] == "pytorch"
    # The tokenization's defaults filled in, as Elasticsearch answers.
    assert r.json()["inference_config"]["text_expansion"]["tokenization"]["bert"]["span"] == -1
    total = (model_dir / "model.pt").stat().st_size
    for i, data in enumerate(definition_parts(model_dir)):
        r = put_part(http, model_id, i, data, total)
        assert r.status_code == 200 and r.json() == {"acknowledged": True}, r.text
    vocabulary = json.loads((model_dir / "vocab.json").read_text())
    r = http.put(f"/_ml/trained_models/{model_id}/vocabulary", json=vocabulary)
    assert r.status_code == 200 and r.json() == {"acknowledged": True}, r.text


def reference_tokens(model_dir: Path, text: str) -> dict[str, float]:
    """transformers' vector of `text` for the uploaded model, by token (dots as the API writes them)."""
    from transformers import BertTokenizer

    reference_dir = torchscript_reference(model_dir)
    ids = np.array(BertTokenizer.from_pretrained(reference_dir)(text)["input_ids"])
    weights = reference_weights(reference_model(reference_dir), [ids])[0]
    vocabulary = json.loads((model_dir / "vocab.json").read_text())["vocabulary"]
    return {vocabulary[i].replace(".", "__"): float(weights[i]) for i in np.flatnonzero(weights > 0)}
