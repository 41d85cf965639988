"""Admission by capacity, end to end: a server with 2 processors takes no more allocations than they hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from elasticsearch import ApiError, Elasticsearch

from elserve.deployments.worker import WORKER_NAME
from tests.support.clients import make_client
from tests.support.server import PASSWORD, Server
from tests.support.waiting import wait_until

LIMITS = ["--processors", "2", "--ml-memory", "4gb"]


def _error(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.body["error"]


def _deployment_stats(es: Elasticsearch, deployment_id: str) -> dict:
    [entry] = es.ml.get_trained_models_stats(model_id=deployment_id)["trained_model_stats"]
    return entry["deployment_stats"]


def _allocations(server: Server) -> set[int]:
    """The server's allocation workers: the processes forked from its models' parents."""
    assert server.process is not None
    return {p for p in server.worker_pids() if _name(p) == WORKER_NAME}


def _name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def test_priority_is_validated_as_elasticsearch_validates_it(server: Server) -> None:
    start = "/_ml/trained_models/.elser_model_2/deployment/_start"
    with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=60) as http:
        by_query = http.post(start, params={"deployment_id": "prio", "priority": "high"})
        assert by_query.status_code == 400
        assert by_query.json()["error"]["type"] == "illegal_argument_exception"
        assert by_query.json()["error"]["reason"] == (
            "No enum constant org.elasticsearch.xpack.core.ml.inference.assignment.Priority.HIGH"
        )
        by_body = http.post(start, params={"deployment_id": "prio"}, json={"priority": "urgent"})
        assert by_body.status_code == 400
        error = by_body.json()["error"]
        assert error["type"] == "x_content_parse_exception"
        assert error["reason"] == (
            "[1:13] [cluster:admin/xpack/ml/trained_models/deployment/start] failed to parse field [priority]"
        )
        assert error["caused_by"]["type"] == "illegal_argument_exception"
        low_but_two = http.post(start, params={"deployment_id": "prio", "priority": "low", "number_of_allocations": 2})
        assert low_but_two.status_code == 400
        assert low_but_two.json()["error"]["reason"] == (
            "Validation Failed: 1: [number_of_allocations] must be 1 when [priority] is low;"
        )


def test_allocations_stay_within_the_processors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data, args=LIMITS).start()
    try:
        es = make_client(server, retry_on_status=())  # a 429 is the answer under test, not a reason to retry
        before = set(_allocations(server))

        # A hostile start: a thousand allocations. Refused (Elasticsearch cannot scale here either): no process.
        with pytest.raises(ApiError) as greedy:
            es.ml.start_trained_model_deployment(
                model_id=".elser_model_2", deployment_id="greedy", number_of_allocations=1000
            )
        assert greedy.value.status_code == 429
        assert _error(greedy)["reason"] == (
            "Could not start deployment because there are not enough resources to provide all requested allocations"
        )
        assert set(_allocations(server)) == before

        # Two allocations of one thread fill the two processors (a fresh server loads the model first: 300 s,
        # not the default 30 s, for that).
        started = es.options(request_timeout=300).ml.start_trained_model_deployment(
            model_id=".elser_model_2",
            deployment_id="fills",
            number_of_allocations=2,
            wait_for="fully_allocated",
            timeout="300s",
        )["assignment"]
        # Memory as measured: the model's parent (runtime and model) once, a worker forked from it per allocation.
        per_allocation = started["task_parameters"]["per_allocation_memory_bytes"]
        per_deployment = started["task_parameters"]["per_deployment_memory_bytes"]
        assert 0 < per_allocation < per_deployment
        [entry] = es.ml.get_trained_models_stats(model_id="fills")["trained_model_stats"]
        assert entry["model_size_stats"]["required_native_memory_bytes"] > 2 * per_allocation
        stats = _deployment_stats(es, "fills")
        assert stats["allocation_status"] == {
            "allocation_count": 2,
            "target_allocation_count": 2,
            "state": "fully_allocated",
        }
        [node] = stats["nodes"][0]["node"].values()
        assert node["attributes"]["ml.allocated_processors"] == "2"
        assert node["attributes"]["elserve.ml_memory_limit"] == str(4 << 30)
        workers = set(_allocations(server))
        assert len(workers - before) == 2
        [node_memory] = es.ml.get_memory_stats(human=True)["nodes"].values()
        ml = node_memory["mem"]["ml"]
        assert ml["max_in_bytes"] == 4 << 30 and ml["max"] == "4gb"
        assert ml["native_inference_in_bytes"] > 100 << 20  # the parent's and two workers' PSS, measured
        assert ml["native_code_overhead_in_bytes"] > 0  # the fork server they share
        assert node_memory["attributes"]["ml.allocated_processors"] == "2"

        with pytest.raises(ApiError) as none_left:
            es.ml.start_trained_model_deployment(model_id=".elser_model_2", deployment_id="late")
        assert none_left.value.status_code == 429
        assert _error(none_left)["reason"] == (
            "Could not start deployment because no ML nodes with sufficient capacity were found"
        )
        assert "free processors [0]" in _error(none_left)["caused_by"]["reason"]
        with pytest.raises(ApiError) as grow:
            es.ml.update_trained_model_deployment(model_id="fills", number_of_allocations=3)
        assert grow.value.status_code == 429
        assert _error(grow)["reason"] == (
            "Could not update deployment because there are not enough resources to provide all requested allocations"
        )
        assert set(_allocations(server)) == workers

        # Low priority takes no processor: 1 allocation x 1 thread, placed while the processors are full.
        low = es.ml.start_trained_model_deployment(
            model_id=".elser_model_2", deployment_id="background", priority="low"
        )["assignment"]
        assert low["task_parameters"]["priority"] == "low"
        assert len(set(_allocations(server)) - before) == 3
    finally:
        server.stop()


@pytest.mark.slow
def test_what_no_longer_fits_after_a_restart_stays_unassigned(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data, args=LIMITS).start()
    try:
        es = make_client(server)
        es.options(request_timeout=300).ml.start_trained_model_deployment(
            model_id=".elser_model_2",
            deployment_id="fills",
            number_of_allocations=2,
            wait_for="fully_allocated",
            timeout="300s",
        )
        es.ml.start_trained_model_deployment(model_id=".elser_model_2", deployment_id="background", priority="low")
    finally:
        server.stop()

    # Restarted with one processor: what no longer fits stays unassigned (Elasticsearch: `started`, 1 of 2).
    smaller = Server(data, port=server.port, args=["--processors", "1", "--ml-memory", "4gb"]).start()
    try:
        es = make_client(smaller)
        wait_until(lambda: _deployment_stats(es, "fills")["allocation_status"]["allocation_count"] == 1)
        wait_until(lambda: _deployment_stats(es, "background")["allocation_status"]["allocation_count"] == 1)
        stats = _deployment_stats(es, "fills")
        assert stats["allocation_status"] == {"allocation_count": 1, "target_allocation_count": 2, "state": "started"}
        assert "insufficient allocated processors" in stats["reason"]
        assert _deployment_stats(es, "background")["priority"] == "low"  # stored and restored
        assert len(_allocations(smaller)) == 2
    finally:
        smaller.stop()


def test_inference_priority_parameter(http: httpx.Client, elser_endpoint: str) -> None:
    path = f"/_inference/sparse_embedding/{elser_endpoint}"
    bad = http.post(path, params={"priority": "urgent"}, json={"input": ["a query"]})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "illegal_argument_exception"
    assert bad.json()["error"]["reason"] == "[priority] must be one of [search, ingest], got [urgent]"
    # Either lane gives the same vectors.
    as_search = http.post(path, params={"priority": "search"}, json={"input": ["a query"]})
    as_ingest = http.post(path, params={"priority": "ingest"}, json={"input": ["a query"]})
    assert as_search.status_code == as_ingest.status_code == 200
    assert as_search.json() == as_ingest.json()


def test_serve_refuses_a_bad_memory_limit(tmp_path: Path) -> None:
    elserve = Path(sys.executable).with_name("elserve")
    result = subprocess.run(
        [str(elserve), "serve", "--data-dir", str(tmp_path / "data"), "--ml-memory", "lots"],
        capture_output=True,
        text=True,
        timeout=540,  # only against a hang: the CLI imports PyTorch first (8 s on a loaded 2-core machine)
    )
    assert result.returncode == 2
    assert "--ml-memory" in result.stderr and "expected a size with a unit" in result.stderr
