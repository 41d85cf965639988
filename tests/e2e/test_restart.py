"""Endpoints survive `kill -9`; deployments come back by themselves; the password is printed once."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch

from elserve.deployments.batch_hold import HOLD_FILE_ENV
from tests.support.clients import make_client
from tests.support.elser import elser_config
from tests.support.hold import held, wait_until_held
from tests.support.server import Server


def assert_gone(pid: int, log: str, grace: float = 120.0) -> None:
    """The process has exited (a zombie counts), within `grace` seconds: a killed process with
    hundreds of MB mapped takes a moment to go, and the fork server and resource tracker go only once
    they see the server gone. The grace only guards against a process that never exits (5 s was within
    reach of a loaded machine's scheduling)."""
    deadline = time.monotonic() + grace
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = status.read_text()
        except FileNotFoundError:
            return
        if "zombie" in text:
            return
        assert time.monotonic() < deadline, f"worker {pid} outlived the server:\n{text}\n{log[-3000:]}"
        time.sleep(0.05)


def _wait_fully_allocated(es: Elasticsearch, deployment_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = es.ml.get_trained_models_stats(model_id=deployment_id)["trained_model_stats"][0]
        status = stats.get("deployment_stats", {}).get("allocation_status", {})
        if status.get("state") == "fully_allocated" or time.monotonic() > deadline:
            return stats
        time.sleep(0.2)


def test_endpoints_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data).start()
    try:
        es = make_client(server)
        # A fresh server loads the model first: the PUT waits 300 s for it, not the default 30 s (which a
        # machine a dozen times slower than a free core, simulated, missed).
        es.options(request_timeout=300).inference.put(
            task_type="sparse_embedding",
            inference_id="survivor",
            inference_config={"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}},
            timeout="300s",
        )
        before = es.inference.sparse_embedding(inference_id="survivor", input=["persist me"])
    finally:
        server.kill9()

    restarted = Server(data, port=server.port).start()
    try:
        es = make_client(restarted)
        assert [e["inference_id"] for e in es.inference.get(inference_id="survivor")["endpoints"]] == ["survivor"]
        stats = _wait_fully_allocated(es, "survivor")
        assert stats["deployment_stats"]["allocation_status"]["state"] == "fully_allocated"
        after = es.inference.sparse_embedding(inference_id="survivor", input=["persist me"])
        assert after["sparse_embedding"] == before["sparse_embedding"]
        # The model was not downloaded again.
        assert "starting model download" not in restarted.log().split("listening")[-1]
        workers = restarted.worker_pids()
        assert workers
    finally:
        assert restarted.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in restarted.log()
    for pid in workers:  # no orphan worker processes
        assert_gone(pid, restarted.log())


def test_generated_password_is_printed_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Server(data, password=None).start()
    first.stop()
    match = re.search(r"generated: (\S+)", first.log())
    assert match, first.log()
    password = match.group(1)
    second = Server(data, port=first.port, password=None).start()
    try:
        assert httpx.get(second.url, auth=("elastic", password)).status_code == 200
        assert httpx.get(second.url, auth=("elastic", "wrong-password")).status_code == 401
        assert second.log().count("generated: ") == 1  # the same log file: printed once in all
    finally:
        second.stop()


# In the default run, test_server_guards.py's row 13 drains an in-flight request through a SIGTERM to the
# whole process group (the harder case), and test_endpoints_survive_kill_9 sees the workers go after a
# SIGTERM stop; this one adds a request of several batches and the refusal of new connections.
@pytest.mark.slow
def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    import threading

    hold = tmp_path / "hold"  # the worker holds the bulk request until SIGTERM has been seen
    server = Server(tmp_path / "data", env={HOLD_FILE_ENV: str(hold)}).start()
    es = make_client(server)
    es.options(request_timeout=300).inference.put(  # a fresh server loads the model: as above, 300 s
        task_type="sparse_embedding",
        inference_id="drain",
        inference_config=elser_config(),
        timeout="300s",
    )
    workers = server.worker_pids()
    answers: list[httpx.Response] = []

    def bulk() -> None:
        # Held, its size does not make it in flight; a few batches (4,096 tokens each) whose encoding must
        # fit in the server's 30 s graceful shutdown and the request's timeout on any machine (it was 120
        # passages: 6.7 s of encoding on a loaded 2-core machine, 11.8 s with AVX2 forced).
        answers.append(
            httpx.post(
                f"{server.url}/_inference/sparse_embedding/drain",
                params={"timeout": "600s"},
                json={"input": ["a long passage of many words " * 60] * 12},
                auth=("elastic", server.password),
                timeout=600,
            )
        )

    thread = threading.Thread(target=bulk)
    with held(hold):
        thread.start()
        wait_until_held(hold)  # the request is in flight
        server.process.send_signal(signal.SIGTERM)
        while True:  # the server has begun to shut down: it no longer accepts connections
            try:
                httpx.head(server.url, timeout=5)
                time.sleep(0.05)
            except httpx.TransportError:
                break
    assert server.wait_exit() in (0, -signal.SIGTERM)
    thread.join()
    assert answers[0].status_code == 200
    assert len(answers[0].json()["sparse_embedding"]) == 12
    for pid in workers:
        assert_gone(pid, server.log())
