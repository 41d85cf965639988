"""eland 9.2's own import code against a real server: `eland_import_hub_model --task-type
text_expansion` traces a local BERT masked-LM SPLADE directory, freezes it (`torch.jit.freeze`: the
weights become graph constants) and uploads it through the official client; then the model deploys
(`--start`), answers `ml.infer_trained_model`, serves an `elasticsearch`-service endpoint with its
`model_id`, and answers the reference SPLADE vectors. The model eland saves also imports with `elserve models import`.

eland's PyTorch code needs transformers 4 (and its hub client, tokenizers and sentence-transformers
5), where elserve pins transformers 5: `make` installs those into `.venv/eland-site` (see Makefile),
which only eland's own processes here put first on their path; torch is the project's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import Elasticsearch

from tests.runtime.reference import reference_model, reference_weights
from tests.support.clients import make_client
from tests.support.model_factory import build_bert_dir, build_distilbert_dir
from tests.support.server import PASSWORD, Server

ELAND_SITE = Path(sys.prefix) / "eland-site"
TEXTS = ["hello world", "The quick brown fox, e.g. w1 w2 ... jumps!", "a"]
# Tracing and uploading a small model takes seconds; the bound is against a hang.
ELAND_TIMEOUT_S = 600


def _eland_env() -> dict[str, str]:
    """The environment of an eland process: its transformers 4 first on the path, no hub."""
    path = os.pathsep.join(p for p in (str(ELAND_SITE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module", autouse=True)
def _eland_installed() -> None:
    if not ELAND_SITE.is_dir():
        pytest.skip(f"eland's transformers 4 is not installed in [{ELAND_SITE}]: run `make .venv/.installed`")
    probe = subprocess.run(
        [sys.executable, "-c", "import eland, transformers; assert transformers.__version__.startswith('4.')"],
        env=_eland_env(),
        capture_output=True,
        text=True,
        timeout=ELAND_TIMEOUT_S,
    )
    if probe.returncode != 0:
        pytest.skip(f"eland cannot be imported: {probe.stderr.strip().splitlines()[-1:]}")


def _hub_dir(path: Path, architecture: str = "bert", real: Path | None = None) -> Path:
    """A random BERT (or DistilBERT) masked-LM SPLADE directory, or a copy of the `real` one, as the
    hub publishes one, `vocab.txt` included (eland loads the slow `BertTokenizer`)."""
    if real is not None:
        shutil.copytree(real, path)
    elif architecture == "distilbert":
        return build_distilbert_dir(path, vocab_txt_only=True)
    else:
        build_bert_dir(path)
    vocab = json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
    (path / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")
    return path


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _hub_dir(tmp_path_factory.mktemp("hub") / "splade")


def _reference(hub_dir: Path, text: str) -> dict[str, float]:
    """The reference SPLADE vector of `text`, by token (dots as the `_inference` API renders them)."""
    from transformers import BertTokenizer

    ids = np.array(BertTokenizer.from_pretrained(hub_dir)(text)["input_ids"])
    weights = reference_weights(reference_model(hub_dir), [ids])[0]
    vocab = (hub_dir / "vocab.txt").read_text().splitlines()
    return {vocab[i].replace(".", "__"): float(weights[i]) for i in np.flatnonzero(weights > 0)}


def _check_vectors(es: Elasticsearch, inference_id: str, hub_dir: Path) -> None:
    answer = es.inference.inference(inference_id=inference_id, input=TEXTS)
    for text, result in zip(TEXTS, answer["sparse_embedding"], strict=True):
        got, want = result["embedding"], _reference(hub_dir, text)
        assert set(got) == set(want), text
        assert max(abs(got[t] - want[t]) for t in want) <= 1e-4, text


def _put_endpoint(es: Elasticsearch, inference_id: str, model_id: str) -> None:
    es.options(request_timeout=300).inference.put(
        task_type="sparse_embedding",
        inference_id=inference_id,
        inference_config={
            "service": "elasticsearch",
            "service_settings": {"model_id": model_id, "num_allocations": 1, "num_threads": 1},
        },
        timeout="300s",
    )


def test_eland_import_hub_model_deploys_and_serves(server: Server, es: Elasticsearch, hub_dir: Path) -> None:
    model_id = "eland-splade"
    eland = Path(sys.executable).with_name("eland_import_hub_model")
    models = server.data_dir / "models"
    before = set(models.iterdir()) if models.is_dir() else set()
    done = subprocess.run(
        [
            str(eland),
            "--url",
            server.url,
            "-u",
            "elastic",
            "-p",
            PASSWORD,
            "--hub-model-id",
            str(hub_dir),
            "--es-model-id",
            model_id,
            "--task-type",
            "text_expansion",
            "--start",
        ],
        env=_eland_env(),
        capture_output=True,
        text=True,
        timeout=ELAND_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    config = es.ml.get_trained_models(model_id=model_id, include="definition_status")["trained_model_configs"][0]
    assert config["fully_defined"] and "text_expansion" in config["inference_config"]
    # `--start` deployed it: started, one allocation.
    stats = es.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"][0]
    deployment = stats["deployment_stats"]
    assert deployment["state"] == "started", deployment
    assert deployment["allocation_status"]["allocation_count"] == 1
    # What eland uploaded is frozen; its graph's weights run through the exact head, and it is sized
    # from its constants as its checkpoint is.
    (installed,) = {p for p in models.iterdir() if (p / "model.pt").is_file()} - before
    import torch

    from elserve.runtime import Encoder
    from elserve.runtime.memory import estimate_memory

    assert not torch.jit.load(str(installed / "model.pt")).state_dict(), "eland 9 froze it"
    assert isinstance(Encoder.load(installed), Encoder)
    assert estimate_memory(installed, 1024) == estimate_memory(hub_dir, 1024)
    log = server.log()  # the shared server's: only this model's lines
    assert f"[{model_id}] cannot size" not in log and f"[{installed}] cannot size" not in log
    sizes = stats["model_size_stats"]
    assert sizes["required_native_memory_bytes"] > sizes["model_size_bytes"] > 0

    # The trained-model inference API eland and the client's `ml.infer_trained_model` call, on the
    # deployment `--start` made (its id is the model's).
    docs = [{"text_field": text} for text in TEXTS]
    answer = es.ml.infer_trained_model(model_id=model_id, docs=docs)
    for text, result in zip(TEXTS, answer["inference_results"], strict=True):
        got = {token.replace(".", "__"): weight for token, weight in result["predicted_value"].items()}
        want = _reference(hub_dir, text)
        assert set(got) == set(want), text
        assert max(abs(got[t] - want[t]) for t in want) <= 1e-4, text

    # An endpoint of that model_id deploys it again (a deployment of its own) and serves the reference.
    _put_endpoint(es, "eland-endpoint", model_id)
    _check_vectors(es, "eland-endpoint", hub_dir)
    es.inference.delete(inference_id="eland-endpoint")
    es.ml.stop_trained_model_deployment(model_id=model_id)
    es.ml.delete_trained_model(model_id=model_id)


_SAVE = """
import json, shutil, sys
from pathlib import Path
from eland.ml.pytorch.transformers import TransformerModel

hub, out = sys.argv[1], Path(sys.argv[2])
model = TransformerModel(model_id=hub, task_type="text_expansion", es_version=(9, 2, 0))
model_path, config, vocab_path = model.save(str(out / "eland"))
shutil.copy(model_path, out / "model.pt")
shutil.copy(vocab_path, out / "vocab.json")
(out / "trained_model_config.json").write_text(json.dumps(config.to_dict()))
"""


@pytest.mark.slow  # about a minute: eland's process, an import, a server of its own
@pytest.mark.parametrize("architecture", ["bert", "distilbert", "splade-tiny"])
def test_eland_saved_model_imports_with_elserve_models_import(
    tmp_path: Path, architecture: str, request: pytest.FixtureRequest
) -> None:
    # eland's TransformerModel.save: traced (DistilBERT in eland's wrapper), frozen, saved in the
    # Elastic layout's three files; of a random model, or of the real SPLADE-tiny.
    real = request.getfixturevalue("splade_model_dir") if architecture == "splade-tiny" else None
    hub_dir = _hub_dir(tmp_path / "hub", architecture, real)
    model_dir = tmp_path / "eland-model"
    (model_dir / "eland").mkdir(parents=True)
    saved = subprocess.run(
        [sys.executable, "-c", _SAVE, str(hub_dir), str(model_dir)],
        env=_eland_env(),
        capture_output=True,
        text=True,
        timeout=ELAND_TIMEOUT_S,
    )
    assert saved.returncode == 0, saved.stderr[-4000:]
    import torch

    assert not torch.jit.load(str(model_dir / "model.pt")).state_dict(), "eland 9 froze it"
    data_dir = tmp_path / "data"
    elserve = Path(sys.executable).with_name("elserve")
    imported = subprocess.run(
        [
            str(elserve),
            "models",
            "import",
            f"file:{model_dir}",
            "--model-id",
            "eland-frozen",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=ELAND_TIMEOUT_S,
    )
    assert imported.returncode == 0, imported.stderr[-4000:]
    server = Server(data_dir).start()
    try:
        es = make_client(server)
        _put_endpoint(es, "frozen-import", "eland-frozen")
        _check_vectors(es, "frozen-import", hub_dir)
        log = server.log()
        assert "cannot size" not in log
        # Its graph's weights went through the exact head, not the TorchScript run as itself.
        assert "kernels {'layers'" in log and "'layers': 'torchscript'" not in log, log
    finally:
        server.stop()
