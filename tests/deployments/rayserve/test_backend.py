"""`elserve serve --backend ray` end to end, on a local Ray the server starts: the deployments
lifecycle through the official client, the same vectors as the local encoder, `_update` 1 -> 2,
scale to zero and back, a replica killed, and no Ray process left after shutdown.

The tests of this module share one server and run in order (the last one stops it).
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import ApiError, Elasticsearch

from elserve.runtime import to_token_weights
from elserve.runtime.encoder import Encoder
from tests.deployments.rayserve.conftest import (
    ENDPOINT_TIMEOUT,
    alive,
    deployment_stats,
    put_elser,
    replica_pids,
    still_running,
    wait_for_stats,
)
from tests.support.clients import make_client
from tests.support.hold import held, wait_until_held
from tests.support.server import Server

pytestmark = pytest.mark.ray

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Sparse retrieval expands a query into weighted vocabulary terms.",
    "elserve answers Elasticsearch's inference API",
    "a " * 600,  # longer than the model's window: truncated
]


def replicas(server: Server, deployment_id: str) -> list[int]:
    return alive(replica_pids(server, f"elserve-{deployment_id}"))


def _fully_allocated(n: int):
    return lambda s: (
        s["state"] == "started"
        and s["allocation_status"]
        == {
            "allocation_count": n,
            "target_allocation_count": n,
            "state": "fully_allocated",
        }
    )


def test_lifecycle_and_vectors_equal_local(
    ray_es: Elasticsearch, ray_server: Server, splade_model_dir: Path, tmp_path: Path
) -> None:
    put_elser(ray_es, "ray-life")
    stats = wait_for_stats(ray_es, "ray-life", _fully_allocated(1))
    [node] = stats["nodes"]
    assert node["routing_state"] == {"routing_state": "started"} and node["number_of_allocations"] == 1

    answer = ray_es.inference.inference(inference_id="ray-life", input=TEXTS)["sparse_embedding"]
    # The reference: the encoder in this process, and the local backend's server (its worker processes).
    encoder = Encoder.load(splade_model_dir, num_threads=1)
    reference = [
        {"is_truncated": truncated, "embedding": to_token_weights(vector, encoder.tokenizer.names)}
        for vector, truncated in encoder.encode(TEXTS)
    ]
    local_server = Server(tmp_path / "local").start()
    try:
        local_es = make_client(local_server)
        put_elser(local_es, "local-life")
        local = local_es.inference.inference(inference_id="local-life", input=TEXTS)["sparse_embedding"]
    finally:
        local_server.stop()
    for want_all in (reference, local):
        for got, want in zip(answer, want_all, strict=True):
            assert got["is_truncated"] is want["is_truncated"]
            assert got["embedding"].keys() == want["embedding"].keys()
            np.testing.assert_allclose(
                [got["embedding"][k] for k in want["embedding"]],
                list(want["embedding"].values()),
                rtol=0,
                atol=1e-4,
            )
    assert answer[-1]["is_truncated"] is True

    stats = deployment_stats(ray_es, "ray-life")
    assert stats["inference_count"] == len(TEXTS)
    assert stats["nodes"][0]["inference_count"] == len(TEXTS)

    ray_es.inference.delete(inference_id="ray-life")
    assert (
        ray_es.ml.get_trained_models_stats(model_id=".elser_model_2")["trained_model_stats"][0].get("deployment_stats")
        is None
    )
    assert not still_running(lambda: replicas(ray_server, "ray-life"))


def test_update_one_to_two_replicas(ray_es: Elasticsearch, ray_server: Server) -> None:
    put_elser(ray_es, "ray-update")
    wait_for_stats(ray_es, "ray-update", _fully_allocated(1))
    ray_es.inference.update(
        task_type="sparse_embedding",
        inference_id="ray-update",
        inference_config={"service_settings": {"num_allocations": 2}},
    )
    stats = wait_for_stats(ray_es, "ray-update", _fully_allocated(2))
    assert sum(n["number_of_allocations"] for n in stats["nodes"]) == 2
    assert len(replicas(ray_server, "ray-update")) == 2
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: ray_es.inference.inference(inference_id="ray-update", input=[t] * 8), TEXTS))
    assert all(len(a["sparse_embedding"]) == 8 for a in answers)
    ray_es.inference.delete(inference_id="ray-update")


def test_scale_to_zero_and_wake_up(ray_es: Elasticsearch, ray_server: Server) -> None:
    adaptive = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 1}
    put_elser(ray_es, "ray-zero", adaptive_allocations=adaptive)
    wait_for_stats(ray_es, "ray-zero", _fully_allocated(1))
    ray_es.inference.inference(inference_id="ray-zero", input=TEXTS[:1])
    # Idle past --scale-to-zero-time: Serve's autoscaler takes the replica away; the deployment stays started.
    stats = wait_for_stats(
        ray_es,
        "ray-zero",
        lambda s: (
            s["allocation_status"]["allocation_count"] == 0
            and s["nodes"] == []
            and not replicas(ray_server, "ray-zero")
        ),
    )
    assert stats["state"] == "started"
    # A request wakes it: it waits for the new replica and is answered.
    answer = ray_es.inference.inference(inference_id="ray-zero", input=TEXTS[:2])["sparse_embedding"]
    assert len(answer) == 2 and answer[0]["embedding"]
    wait_for_stats(ray_es, "ray-zero", lambda s: s["allocation_status"]["allocation_count"] == 1)
    ray_es.inference.delete(inference_id="ray-zero")


def test_killed_replica_is_replaced_and_requests_answered(ray_es: Elasticsearch, ray_server: Server) -> None:
    put_elser(ray_es, "ray-kill")
    wait_for_stats(ray_es, "ray-kill", _fully_allocated(1))
    [victim] = replicas(ray_server, "ray-kill")

    def infer(i: int) -> int | str:
        try:
            return len(ray_es.inference.inference(inference_id="ray-kill", input=TEXTS)["sparse_embedding"])
        except ApiError as exc:  # an answered error is allowed; it must be Elasticsearch-shaped
            return exc.body["error"]["type"]

    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(infer, i) for i in range(8)]
        os.kill(victim, signal.SIGKILL)
        results = [f.result(timeout=300) for f in pending]
    assert all(r == len(TEXTS) or isinstance(r, str) for r in results), results
    wait_for_stats(
        ray_es,
        "ray-kill",
        lambda s: _fully_allocated(1)(s) and replicas(ray_server, "ray-kill") not in ([], [victim]),
    )
    assert len(ray_es.inference.inference(inference_id="ray-kill", input=TEXTS)["sparse_embedding"]) == len(TEXTS)
    ray_es.inference.delete(inference_id="ray-kill")


def test_full_queue_answers_429(ray_es: Elasticsearch, ray_server: Server, ray_hold_file: Path) -> None:
    started = ray_es.ml.start_trained_model_deployment(
        model_id=".elser_model_2",
        deployment_id="ray-full",
        queue_capacity=2,
        wait_for="fully_allocated",
        timeout=ENDPOINT_TIMEOUT,  # a replica's start, not the default 30 s
    )["assignment"]
    [route] = started["routing_table"].values()  # the Ray node of the one replica
    assert route["current_allocations"] == 1 and route["routing_state"] == "started"
    ray_es.inference.put(
        task_type="sparse_embedding",
        inference_id="ray-full-endpoint",
        inference_config={"service": "elasticsearch", "service_settings": {"deployment_id": "ray-full"}},
    )
    bulk = ["word " * 600] * 100  # 100 texts of 512 tokens: 13 calls of one token budget each
    once = ray_es.options(retry_on_status=(), max_retries=0)  # a 429 is the answer, not a reason to retry

    def infer(texts: list[str]) -> int | tuple[int, str]:
        try:
            return len(once.inference.inference(inference_id="ray-full-endpoint", input=texts)["sparse_embedding"])
        except ApiError as exc:
            return exc.meta.status, exc.body["error"]["type"]

    with ThreadPoolExecutor(1) as pool:
        with held(ray_hold_file):
            first = pool.submit(infer, TEXTS[:1])
            wait_until_held(ray_hold_file)
            # Inside the server: the held request and this one (queue_capacity 2). Its 13 calls meet the
            # replica's 8 ongoing and Serve's 2 queued: Serve refuses the rest, answered as Elasticsearch's 429.
            assert infer(bulk) == (429, "es_rejected_execution_exception")
        assert first.result(timeout=300) == 1  # released: the held request is answered
    assert infer(TEXTS) == len(TEXTS)
    assert deployment_stats(ray_es, "ray-full")["rejected_execution_count"] >= 1
    ray_es.inference.delete(inference_id="ray-full-endpoint")
    ray_es.ml.stop_trained_model_deployment(model_id="ray-full")


def test_shutdown_leaves_no_ray_process(ray_es: Elasticsearch, ray_server: Server) -> None:
    put_elser(ray_es, "ray-last")  # left deployed: shutdown removes it with Ray
    wait_for_stats(ray_es, "ray-last", _fully_allocated(1))
    below = ray_server.worker_pids()
    assert replica_pids(ray_server, "elserve-ray-last")
    assert ray_server.stop() in (0, -signal.SIGTERM)
    assert still_running(lambda: alive(below)) == []
