"""A worker that cannot start says why: the exception and the last frames of its traceback in the
deployment's `reason` (the start's error and `_stats`), the whole traceback in the server's log."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from elserve.deployments.worker import FAIL_START_ENV
from tests.support.clients import make_http
from tests.support.model_factory import build_torchscript_dir
from tests.support.server import Server

MODEL_ID = "fails-to-start"
CAUSE = "injected start failure"


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose every worker fails its start (the worker's test hook)."""
    with Server(tmp_path_factory.mktemp("failing") / "data", env={FAIL_START_ENV: CAUSE}).start() as server:
        yield server


def _upload(http: httpx.Client, model_dir: Path) -> None:
    """The model as eland 9 uploads it (frozen TorchScript, one definition part)."""
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    assert http.put(f"/_ml/trained_models/{MODEL_ID}", json=config).status_code == 200
    data = (model_dir / "model.pt").read_bytes()
    part = {"definition": base64.b64encode(data).decode(), "total_definition_length": len(data), "total_parts": 1}
    assert http.put(f"/_ml/trained_models/{MODEL_ID}/definition/0", json=part).status_code == 200
    vocabulary = json.loads((model_dir / "vocab.json").read_text())
    assert http.put(f"/_ml/trained_models/{MODEL_ID}/vocabulary", json=vocabulary).status_code == 200


def _failed_stats(http: httpx.Client) -> dict:
    """The deployment's stats once it has failed (the bound is against a hang, not a timing)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        stats = http.get(f"/_ml/trained_models/{MODEL_ID}/_stats").json()["trained_model_stats"][0]
        deployment = stats.get("deployment_stats", {})
        if deployment.get("state") == "failed":
            return deployment
        time.sleep(0.1)
    raise AssertionError("the deployment never failed")


# Slow: the default run checks the cause's way up in tests/deployments/test_parent.py
# (test_a_worker_that_cannot_start_says_why); this one adds its rendering in `_stats`.
@pytest.mark.slow
def test_a_worker_that_cannot_start_shows_its_cause_in_stats(failing_server: Server, tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m", frozen=True)
    with make_http(failing_server) as http:
        _upload(http, model_dir)
        # A start that waits: 500 with the cause (and, as Elasticsearch, no deployment left behind).
        r = http.post(f"/_ml/trained_models/{MODEL_ID}/deployment/_start", params={"timeout": "300s"})
        assert r.status_code == 500, r.text
        started = r.json()["error"]["reason"]
        assert f"could not start: RuntimeError: {CAUSE} (at worker.py:" in started, started

        # A start answered at once (`wait_for=starting`): the deployment fails after, and stays in
        # `_stats`, `failed` with the cause.
        r = http.post(f"/_ml/trained_models/{MODEL_ID}/deployment/_start", params={"wait_for": "starting"})
        assert r.status_code == 200, r.text
        deployment = _failed_stats(http)
        reason = deployment["reason"]
        assert f"could not start: RuntimeError: {CAUSE} (at worker.py:" in reason and "in run_forked" in reason, reason
        assert "exited" not in reason
        assert str(failing_server.data_dir) not in reason  # file names, no server path
        routing = deployment["nodes"][0]["routing_state"]
        assert routing["routing_state"] == "failed" and routing["reason"] == reason
        assert http.post(f"/_ml/trained_models/{MODEL_ID}/deployment/_stop").status_code == 200

    log = failing_server.log()
    assert "could not start:\nTraceback (most recent call last)" in log, log[-4000:]
    assert f"RuntimeError: {CAUSE}" in log
