"""Imported models serve: `elserve models import` of a TorchScript package from a `file://` Elastic repository
and of a BERT checkpoint from a hub mirror, then `elasticsearch`-service endpoints over them through the official
client, their vectors equal to the reference for the same weights (1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from elserve.cli import app
from tests.models.hub_mirror import HubRepo, hub_mirror
from tests.models.repository_server import package_elastic_dir
from tests.runtime import reference
from tests.support.clients import make_client
from tests.support.model_factory import build_torchscript_dir, torchscript_reference
from tests.support.server import Server

TEXTS = ["hello world", "The quick brown fox, e.g. w1 w2 ... jumps!"]


def _reference_tokens(hf_dir: Path, vocabulary: list[str], text: str) -> dict[str, float]:
    from transformers import BertTokenizer

    ids = np.array(BertTokenizer.from_pretrained(hf_dir)(text)["input_ids"])
    weights = reference.reference_weights(reference.reference_model(hf_dir), [ids])[0]
    return {vocabulary[i].replace(".", "__"): float(weights[i]) for i in np.flatnonzero(weights > 0)}


@pytest.mark.slow
def test_imported_models_serve_the_reference_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elastic_dir = build_torchscript_dir(tmp_path / "ts")
    hf_dir = torchscript_reference(elastic_dir)
    package_elastic_dir(elastic_dir, tmp_path / "repo", "my_ts")
    data = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "models",
            "import",
            "elastic:my_ts",
            "--model-id",
            "my-ts",
            "--data-dir",
            str(data),
            "--model-repository",
            (tmp_path / "repo").as_uri(),
        ],
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with hub_mirror([HubRepo("org/tiny", hf_dir)]) as (endpoint, _):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        result = runner.invoke(app, ["models", "import", "hf:org/tiny", "--model-id", "my-hf", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output

    vocabulary = json.loads((elastic_dir / "vocab.json").read_text())["vocabulary"]
    server = Server(data).start()
    try:
        es = make_client(server)
        for model_id in ("my-ts", "my-hf"):
            es.inference.put(
                task_type="sparse_embedding",
                inference_id=f"{model_id}-endpoint",
                inference_config={
                    "service": "elasticsearch",
                    "service_settings": {"model_id": model_id, "num_allocations": 1, "num_threads": 1},
                },
                timeout="300s",
            )
            answer = es.inference.inference(inference_id=f"{model_id}-endpoint", input=TEXTS)
            for text, result in zip(TEXTS, answer["sparse_embedding"], strict=True):
                got, want = result["embedding"], _reference_tokens(hf_dir, vocabulary, text)
                assert set(got) == set(want), (model_id, text)
                assert max(abs(got[t] - want[t]) for t in want) <= 1e-4, (model_id, text)
    finally:
        server.stop()
