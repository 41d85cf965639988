"""The Ray backend's fixtures: an `elserve serve --backend ray` process (a local Ray it starts itself),
and a simulated two-node cluster (`ray.cluster_utils.Cluster`) on 127.0.0.1 for `--ray-address`.

Only `make test-ray` runs these (marker `ray`; the extra `elserve[ray]` installed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elasticsearch import Elasticsearch

from elserve.deployments.batch_hold import HOLD_FILE_ENV
from elserve.runtime import to_token_weights
from elserve.runtime.encoder import Encoder
from tests.support.clients import make_client
from tests.support.server import Server

ENDPOINT_TIMEOUT = "300s"


def put_elser(es: Elasticsearch, inference_id: str, **service_settings: Any) -> None:
    settings = {"model_id": ".elser_model_2", "num_threads": 1, **service_settings}
    if "adaptive_allocations" not in settings:
        settings.setdefault("num_allocations", 1)
    es.inference.put(
        task_type="sparse_embedding",
        inference_id=inference_id,
        inference_config={"service": "elasticsearch", "service_settings": settings},
        timeout=ENDPOINT_TIMEOUT,
    )


def put_endpoint(es: Elasticsearch, inference_id: str, model_id: str, num_allocations: int = 1) -> None:
    """An `elasticsearch`-service endpoint on an uploaded or imported model."""
    put_elser(es, inference_id, model_id=model_id, num_allocations=num_allocations)


DISTRIBUTION_TEXTS = ["hello world", "The quick brown fox, e.g. w1 w2 ... jumps!", "an example sentence " * 80]


def assert_local_vectors(es: Elasticsearch, inference_id: str, encoder: Encoder) -> None:
    """The endpoint answers the vectors `encoder` (this process, the same files) computes, to 1e-4."""
    answer = es.inference.inference(inference_id=inference_id, input=DISTRIBUTION_TEXTS)["sparse_embedding"]
    for got, (vector, truncated) in zip(answer, encoder.encode(DISTRIBUTION_TEXTS), strict=True):
        want = to_token_weights(vector, encoder.tokenizer.names)
        assert got["is_truncated"] is truncated
        assert got["embedding"].keys() == want.keys()
        np.testing.assert_allclose([got["embedding"][k] for k in want], list(want.values()), rtol=0, atol=1e-4)


def deployment_stats(es: Elasticsearch, deployment_id: str) -> dict[str, Any]:
    [entry] = es.ml.get_trained_models_stats(model_id=deployment_id)["trained_model_stats"]
    return entry["deployment_stats"]


def wait_for_stats(
    es: Elasticsearch, deployment_id: str, reached: Callable[[dict[str, Any]], bool], timeout: float = 180.0
) -> dict[str, Any]:
    """Poll the stats until `reached` (a wait for an event, not a speed budget: the timeout is generous)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = deployment_stats(es, deployment_id)
        if reached(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"stats never reached the expected state: {stats}")
        time.sleep(0.5)


def alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie counts as gone)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def still_running(find: Callable[[], list[int]], timeout: float = 120.0) -> list[int]:
    """What `find` lists once it lists nothing, or when `timeout` has passed. Serve marks a replica stopped,
    and Ray's shutdown returns, once the process is told to go (`ray.kill`; a raylet's workers see their
    raylet die): its exit comes a moment later. The timeout only guards against a process that never goes."""
    deadline = time.monotonic() + timeout
    while (running := find()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return running


def replica_pids(server: Server, application: str) -> list[int]:
    """The server's Ray Serve replica processes of one application (their title names it)."""
    found = []
    for pid in server.worker_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"ServeReplica:{application}:" in title:
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def ray_hold_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, the module server's replicas hold their batches (tests/support/hold.py)."""
    return tmp_path_factory.mktemp("ray-hold") / "hold"


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory, ray_hold_file: Path) -> Iterator[Server]:
    """elserve on a local Ray it starts (2 CPUs); adaptive deployments go to zero after 3 s idle."""
    pytest.importorskip("ray")
    srv = Server(
        tmp_path_factory.mktemp("ray") / "data",
        env={HOLD_FILE_ENV: str(ray_hold_file)},
        args=["--backend", "ray", "--processors", "2", "--scale-to-zero-time", "3s"],
    ).start()
    yield srv
    pids = srv.worker_pids() if srv.process is not None and srv.process.poll() is None else []
    srv.stop()
    for pid in alive(pids):  # a failed test must not leave Ray running on the machine
        os.kill(pid, 9)


@pytest.fixture(scope="module")
def ray_es(ray_server: Server) -> Elasticsearch:
    return make_client(ray_server)
