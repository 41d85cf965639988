"""Models only the server's disk holds, served by Ray replicas whose cache is elsewhere (`--ray-model-cache`
stands for another node's disk: nothing of the server's cache is there): a model uploaded through the
REST API as eland does and one imported with `file:` reach the replicas through Ray's object store, are
installed in the replicas' cache under the server's key, and answer the local encoder's vectors (1e-4);
the object goes with the last deployment; a server copy that no longer matches its import's checksum is
refused by the replica, with the reason in the deployment's stats.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from elasticsearch import ApiError
from typer.testing import CliRunner

from elserve.cli import app
from elserve.models.cache import MARKER
from elserve.models.sources.file import directory_sha256
from elserve.runtime.encoder import Encoder
from tests.deployments.rayserve.conftest import alive, assert_local_vectors, put_endpoint, wait_for_stats
from tests.support.clients import make_client
from tests.support.model_factory import build_torchscript_dir
from tests.support.server import PASSWORD, Server
from tests.support.uploads import upload_model

pytestmark = pytest.mark.ray

_PUT = re.compile(r"put its files \((\d+) bytes\) in Ray's object store for the replicas in ([0-9.]+) s")


def _fully_allocated(stats: dict) -> bool:
    return stats["state"] == "started" and stats["allocation_status"]["state"] == "fully_allocated"


def test_uploaded_and_file_imported_models_reach_replicas_through_the_object_store(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    model_dir = build_torchscript_dir(tmp_path / "model")
    encoder = Encoder.load(model_dir, num_threads=1)
    # A second model, the same weights under another description: its import's checksum is broken below.
    other_dir = tmp_path / "other-model"
    shutil.copytree(model_dir, other_dir)
    config = json.loads((other_dir / "trained_model_config.json").read_text())
    (other_dir / "trained_model_config.json").write_text(json.dumps(config | {"description": "another"}))

    data = tmp_path / "data"
    runner = CliRunner()
    for model_id, directory in (("ship-file", model_dir), ("ship-bad", other_dir)):
        result = runner.invoke(
            app,
            [
                "models",
                "import",
                f"file:{directory}",
                "--model-id",
                model_id,
                "--data-dir",
                str(data),
                "--sha256",
                directory_sha256(directory),
            ],
        )
        assert result.exit_code == 0, result.output

    node_cache = tmp_path / "node-models"
    server = Server(data, args=["--backend", "ray", "--processors", "2", "--ray-model-cache", str(node_cache)]).start()
    pids: list[int] = []
    try:
        es = make_client(server)
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
            upload_model(http, "ship-upload", model_dir)
            models = {m["model_id"]: m for m in http.get("/_ml/trained_models").json()["trained_model_configs"]}
        assert {"ship-upload", "ship-file", "ship-bad"} <= models.keys()

        for model_id in ("ship-upload", "ship-file"):
            put_endpoint(es, f"{model_id}-ep", model_id)
            stats = wait_for_stats(es, f"{model_id}-ep", _fully_allocated)
            assert stats["nodes"][0]["number_of_allocations"] == 1
            assert_local_vectors(es, f"{model_id}-ep", encoder)
        pids = server.worker_pids()

        # Each replica installed its model in its own cache, under the server's key, with the same files.
        server_keys = {p.name for p in (data / "models").iterdir() if (p / MARKER).is_file()}
        node_keys = {p.name for p in node_cache.iterdir() if (p / MARKER).is_file()}
        assert len(node_keys) == 2 and node_keys <= server_keys
        for key in node_keys:
            assert directory_sha256(node_cache / key) == directory_sha256(data / "models" / key)
        assert directory_sha256(model_dir) in node_keys  # the file: import's key is its checksum
        assert not (node_cache / ".shipped").exists() or not any((node_cache / ".shipped").iterdir())

        puts = [(int(n), float(s)) for n, s in _PUT.findall(server.log())]
        assert len(puts) == 2, server.log()
        print(f"object store puts (bytes, seconds): {puts}")

        # The last deployment of a key gone: its object is dropped.
        es.inference.delete(inference_id="ship-file-ep")
        assert f"dropped the files of model key [{directory_sha256(model_dir)}]" in server.log()

        # The server's copy changed since its import was checked: the replica refuses it, and says why.
        installed = data / "models" / directory_sha256(other_dir) / "trained_model_config.json"
        installed.write_text(installed.read_text() + "\n")
        with pytest.raises(ApiError) as failed:
            put_endpoint(es, "ship-bad-ep", "ship-bad")
        prefix = "Could not start deployment [ship-bad-ep] of model [ship-bad]: "
        reason = failed.value.body["error"]["reason"]
        assert reason.startswith(prefix), reason
        # The failed deployment went with its endpoint (nothing stays behind); its reason was the answer's.
        entries = es.ml.get_trained_models_stats(model_id="ship-bad")["trained_model_stats"]
        assert [e for e in entries if "deployment_stats" in e] == []
        reason = reason.removeprefix(prefix)
        assert reason.startswith("the replicas failed to start (") and "Traceback" not in reason, reason
        assert "ModelDownloadError: the files of model [ship-bad] shipped from the server" in reason
        assert f"Model sha256 checksums do not match, expected [{directory_sha256(other_dir)}]" in reason
        assert not (node_cache / directory_sha256(other_dir)).exists()
    finally:
        server.stop()
        for pid in alive(pids):  # a failed test must not leave Ray running on the machine
            os.kill(pid, 9)
