"""Several front ends, one store, one Ray cluster: two `elserve serve --backend ray --ray-address ...
--store postgresql://...` processes on their own ports, against a real PostgreSQL
(tests/store/postgres_cluster.py) and a simulated two-node Ray cluster (Ray's `cluster_utils.Cluster`).

One of them (the scaler lease's holder) deploys the Serve applications, the other attaches to them:
neither redeploys what runs (the replicas stay the same processes), `_stats` answers the same on both,
and when the holder is killed under load the other serves on, takes the lease, and the killed one
restarted rejoins without redeploying anything. `make test-cluster` runs them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import NotFoundError

from tests.deployments.rayserve.conftest import deployment_stats, put_elser, wait_for_stats
from tests.store.postgres_cluster import PostgresCluster, postgres_cluster, wait_for  # noqa: F401 - a fixture
from tests.support.clients import make_client, put_at_once
from tests.support.server import PASSWORD, Server, started_together

pytest.importorskip("psycopg", reason="the `postgres` extra (make test-cluster installs it)")
pytestmark = [pytest.mark.ray, pytest.mark.postgres]

TOOK_LEASE = "took the scaler lease"


@pytest.fixture(scope="module")
def ray_two_nodes() -> Iterator[Any]:
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def fronts(
    postgres_cluster: PostgresCluster,  # noqa: F811
    ray_two_nodes: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[Server]]:
    url = postgres_cluster.new_database()
    args = ["--backend", "ray", "--ray-address", ray_two_nodes.address, "--store", url]
    servers = [Server(tmp_path_factory.mktemp(f"front-{name}") / "data", args=args) for name in "ab"]
    with started_together(servers):
        yield servers


def _replicas(application: str) -> list[int]:
    """The pids of `application`'s Serve replicas on this machine (every simulated node's are here)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"ServeReplica:{application}:" in title:
            found.append(int(proc.name))
    return sorted(found)


def _holders(servers: list[Server], since: int = 0) -> list[int]:
    """Which front ends last said they took the lease (and did not say they lost it since); `since`: where
    their logs start (a restarted server appends to its predecessor's)."""
    holding = []
    for i, server in enumerate(servers):
        events = re.findall(r"(took|lost) the scaler lease", server.log()[since:])
        if events and events[-1] == "took":
            holding.append(i)
    return holding


def _comparable(stats: dict[str, Any]) -> dict[str, Any]:
    """What every front end must answer alike: counts, allocations, the Ray nodes and their counts."""
    nodes = sorted(
        (next(iter(n["node"])), n.get("number_of_allocations"), n.get("inference_count")) for n in stats["nodes"]
    )
    return {
        "state": stats["state"],
        "allocations": stats["allocation_status"],
        "inference_count": stats.get("inference_count"),
        "nodes": nodes,
    }


def test_one_owner_deploys_both_serve_and_stats_agree(fronts: list[Server]) -> None:
    a, b = (make_client(s) for s in fronts)
    put_elser(b, "fe-ray", num_allocations=2)
    wait_for_stats(b, "fe-ray", lambda s: s["allocation_status"]["allocation_count"] == 2 and len(s["nodes"]) == 2)
    wait_for_stats(a, "fe-ray", lambda s: s["allocation_status"]["allocation_count"] == 2)
    assert len(_holders(fronts)) == 1  # one front end owns the applications
    replicas = _replicas("elserve-fe-ray")
    assert len(replicas) == 2

    for es, texts in ((a, ["one", "two words"]), (b, ["three", "four more", "five"])):
        for _ in range(2):
            assert len(es.inference.inference(inference_id="fe-ray", input=texts)["sparse_embedding"]) == len(texts)
    # Each front end counted its own calls; both answer the sum (as soon as the other's are published).
    wait_for(lambda: deployment_stats(a, "fe-ray").get("inference_count") == 10, timeout=60)
    wait_for(lambda: deployment_stats(b, "fe-ray").get("inference_count") == 10, timeout=60)
    on_a, on_b = _comparable(deployment_stats(a, "fe-ray")), _comparable(deployment_stats(b, "fe-ray"))
    assert on_a == on_b
    assert sum(n[2] or 0 for n in on_a["nodes"]) == 10
    # Two nodes of one cluster: one cluster uuid, a node id each.
    memory = [es.ml.get_memory_stats()["nodes"] for es in (a, b)]
    assert len({next(iter(m)) for m in memory}) == 2
    assert len({es.info()["cluster_uuid"] for es in (a, b)}) == 1
    assert _replicas("elserve-fe-ray") == replicas  # nobody redeployed it


def test_deleted_through_one_is_gone_everywhere_and_from_serve(fronts: list[Server]) -> None:
    a, b = (make_client(s) for s in fronts)
    put_elser(a, "fe-gone", num_allocations=1)
    wait_for_stats(b, "fe-gone", lambda s: s["allocation_status"]["allocation_count"] == 1)
    other = 1 - _holders(fronts)[0]  # deleted through the front end that does not own it
    assert make_client(fronts[other]).inference.delete(inference_id="fe-gone")["acknowledged"] is True
    for es in (a, b):
        with pytest.raises(NotFoundError):
            es.inference.get(inference_id="fe-gone")
    wait_for(lambda: not _replicas("elserve-fe-gone"), timeout=120)  # the owner deleted the application


def test_the_same_put_on_both_at_once_one_wins_one_application(fronts: list[Server]) -> None:
    body = {
        "service": "elasticsearch",
        "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
    }
    answers = put_at_once(fronts, "/_inference/sparse_embedding/fe-race?timeout=300s", body)
    assert sorted(r.status_code for r in answers) == [200, 400], [r.text for r in answers]
    [lost] = [r for r in answers if r.status_code == 400]
    assert lost.json()["error"]["type"] == "resource_already_exists_exception"
    for es in (make_client(s) for s in fronts):
        wait_for_stats(es, "fe-race", lambda s: s["allocation_status"]["allocation_count"] == 1)
        assert len(es.inference.inference(inference_id="fe-race", input=["race"])["sparse_embedding"]) == 1
    assert len(_replicas("elserve-fe-race")) == 1
    assert make_client(fronts[0]).inference.delete(inference_id="fe-race")["acknowledged"] is True
    wait_for(lambda: not _replicas("elserve-fe-race"), timeout=120)


def test_kill_9_of_the_owner_under_load(fronts: list[Server]) -> None:
    """Last in this file: it replaces the owner by a restarted front end, then stops the other."""
    [owner] = _holders(fronts)
    survivor = 1 - owner
    replicas = _replicas("elserve-fe-ray")
    stop = threading.Event()
    answers: list[list[str]] = [[], []]

    def load(server: Server, into: list[str]) -> None:
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
            while not stop.is_set():
                try:
                    r = http.post("/_inference/sparse_embedding/fe-ray", json={"input": "a short text"})
                    into.append(str(r.status_code))
                except httpx.TransportError:
                    into.append("connection error")

    threads = [threading.Thread(target=load, args=(fronts[i], answers[i])) for i in (0, 1)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answers[0]) >= 5 and len(answers[1]) >= 5, timeout=120)
        fronts[owner].kill9()
        killed = time.monotonic()
        wait_for(lambda: _holders([fronts[survivor]]) == [0], timeout=60)
        print(f"\nthe scaler lease moved {time.monotonic() - killed:.2f} s after its holder's kill -9")
        served = len(answers[survivor])
        wait_for(lambda: len(answers[survivor]) >= served + 20, timeout=120)  # the survivor serves on
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=300)
    assert set(answers[survivor]) == {"200"}, [s for s in answers[survivor] if s != "200"][:5]
    assert set(answers[owner]) <= {"200", "connection error"}
    assert _replicas("elserve-fe-ray") == replicas  # the deployment kept its replicas

    # Restarted on its port, it rejoins: it serves the deployment, and the lease stays where it is.
    before = len(fronts[owner].log())
    restarted = Server(fronts[owner].data_dir, port=fronts[owner].port, args=fronts[owner].extra_args).start()
    fronts[owner] = restarted  # the module fixture stops it
    es = make_client(restarted)
    answer = es.options(request_timeout=300).inference.inference(inference_id="fe-ray", input=["back"], timeout="300s")
    assert answer["sparse_embedding"][0]["embedding"]
    assert _holders([restarted], since=before) == [] and _holders([fronts[survivor]]) == [0]
    assert _replicas("elserve-fe-ray") == replicas
    stats = [deployment_stats(make_client(s), "fe-ray") for s in fronts]
    assert stats[0]["allocation_status"] == stats[1]["allocation_status"]

    # The owner stopped gracefully deletes nothing (the other serves on) and hands the lease on.
    assert fronts[survivor].stop() in (0, -15)
    wait_for(lambda: _holders([restarted], since=before) == [0], timeout=60)
    assert _replicas("elserve-fe-ray") == replicas
    assert len(es.inference.inference(inference_id="fe-ray", input=["still here"])["sparse_embedding"]) == 1
