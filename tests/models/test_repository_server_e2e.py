"""A real `elserve serve --model-repository file://...`: a package missing from the repository falls back to
SPLADE-tiny (said in its description); a corrupt one fails, its reason in `_stats`, nothing installed or served."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.models.repository_server import write_package
from tests.support.server import PASSWORD, Server


def _wait(http: httpx.Client, model_id: str, done: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        if done == "fully_defined":
            body = http.get(f"/_ml/trained_models/{model_id}", params={"include": "definition_status"}).json()
            config = body["trained_model_configs"][0]
            if config.get("fully_defined"):
                return config
        else:
            stats = http.get(f"/_ml/trained_models/{model_id}/_stats").json()["trained_model_stats"][0]
            if stats.get("download", {}).get("state") == done:
                return stats
        assert time.monotonic() < deadline, f"{model_id} did not reach {done}"
        time.sleep(0.1)


def test_fallback_and_corrupt_package_through_the_api(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    write_package(repository, "elser_model_2_linux-x86_64", os.urandom(4096), sha256="f" * 64)  # corrupt
    # no elser_model_2 package at all: that id falls back
    server = Server(tmp_path / "data", args=["--model-repository", repository.as_uri()]).start()
    try:
        http = httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=60)
        assert (
            http.put(
                "/_ml/trained_models/.elser_model_2_linux-x86_64", json={"input": {"field_names": ["text_field"]}}
            ).status_code
            == 200
        )
        stats = _wait(http, ".elser_model_2_linux-x86_64", "failed")
        assert "Model sha256 checksums do not match, expected [" + "f" * 64 + "]" in stats["download"]["reason"]
        assert stats["download"]["source"] == f"elastic:{repository.as_uri()}/#elser_model_2_linux-x86_64"
        # never served: a deployment of it fails with that reason (the download is tried again, and fails again)
        started = http.post(
            "/_ml/trained_models/.elser_model_2_linux-x86_64/deployment/_start", params={"wait_for": "started"}
        )
        assert started.status_code >= 400 and "checksums do not match" in started.text, started.text
        assert not [p for p in (server.data_dir / "models").iterdir() if (p / "model.pt").exists()]

        assert (
            http.put("/_ml/trained_models/.elser_model_2", json={"input": {"field_names": ["text_field"]}}).status_code
            == 200
        )
        config = _wait(http, ".elser_model_2", "fully_defined")
        assert "SPLADE-tiny" in config["description"]
        assert f"Elastic's model repository [{repository.as_uri()}/] could not be reached" in config["description"]
        assert "could not be reached" in server.log() and "serving SPLADE-tiny" in server.log()
    finally:
        server.stop()
