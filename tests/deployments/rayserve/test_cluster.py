"""`--ray-address`: elserve joins a simulated two-node Ray cluster (Ray's own `cluster_utils.Cluster`,
two raylets on this machine, 1 CPU each). Two allocations become two replicas, one per node; the
replicas fetch the model into the nodes' cache from its verified source (not the server's copy);
a restarted server restores the deployment; deleting the endpoint removes the Serve application; a model
uploaded to the server reaches both nodes' replicas through the object store; the server's shutdown leaves
the cluster running.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from elserve.models.cache import MARKER
from elserve.models.sources.file import directory_sha256
from elserve.runtime.encoder import Encoder
from tests.deployments.rayserve.conftest import (
    assert_local_vectors,
    deployment_stats,
    put_elser,
    put_endpoint,
    wait_for_stats,
)
from tests.support.clients import make_client
from tests.support.model_factory import build_torchscript_dir
from tests.support.server import PASSWORD, Server
from tests.support.uploads import upload_model

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[object]:
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_two_nodes_one_replica_each(two_nodes, tmp_path: Path) -> None:
    import ray
    from ray import serve

    node_cache = tmp_path / "node-models"  # what each node fills itself; the server's cache is elsewhere
    args = ["--backend", "ray", "--ray-address", two_nodes.address, "--ray-model-cache", str(node_cache)]
    server = Server(tmp_path / "data", args=args).start()
    try:
        es = make_client(server)
        put_elser(es, "ray-two", num_allocations=2)
        stats = wait_for_stats(
            es, "ray-two", lambda s: s["allocation_status"]["allocation_count"] == 2 and len(s["nodes"]) == 2
        )
        assert stats["state"] == "started" and stats["allocation_status"]["state"] == "fully_allocated"
        node_ids = [next(iter(n["node"])) for n in stats["nodes"]]
        assert len(set(node_ids)) == 2
        assert [n["number_of_allocations"] for n in stats["nodes"]] == [1, 1]
        assert all(n["routing_state"]["routing_state"] == "started" for n in stats["nodes"])

        for _ in range(6):
            answer = es.inference.inference(inference_id="ray-two", input=["one", "two words", "three more words"])
            assert len(answer["sparse_embedding"]) == 3
        stats = deployment_stats(es, "ray-two")
        assert stats["inference_count"] == 18
        assert sum(n.get("inference_count", 0) for n in stats["nodes"]) == 18

        # The replicas installed the model from its source into the nodes' cache, with its record.
        [installed] = [p for p in node_cache.iterdir() if (p / MARKER).is_file()]
        assert json.loads((installed / MARKER).read_text())["source"].startswith("pip:")

        # A restart takes the application down with the server and brings it back from the store.
        assert server.stop() in (0, -signal.SIGTERM)
        server = Server(tmp_path / "data", args=args).start()
        es = make_client(server)
        wait_for_stats(
            es, "ray-two", lambda s: s["allocation_status"]["allocation_count"] == 2 and len(s["nodes"]) == 2
        )
        assert len(es.inference.inference(inference_id="ray-two", input=["again"])["sparse_embedding"]) == 1

        es.inference.delete(inference_id="ray-two")
        assert (
            es.ml.get_trained_models_stats(model_id=".elser_model_2")["trained_model_stats"][0].get("deployment_stats")
            is None
        )

        # A model uploaded to this server (a source no node can read): the replicas on both nodes get its
        # files through the object store, installed once in the nodes' cache (here one directory for both:
        # the cache's lock), under the server's directory name; the vectors are the local encoder's.
        model_dir = build_torchscript_dir(tmp_path / "upload")
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
            upload_model(http, "two-upload", model_dir)
        put_endpoint(es, "two-upload-ep", "two-upload", num_allocations=2)
        wait_for_stats(
            es, "two-upload-ep", lambda s: s["allocation_status"]["allocation_count"] == 2 and len(s["nodes"]) == 2
        )
        for _ in range(3):
            assert_local_vectors(es, "two-upload-ep", Encoder.load(model_dir, num_threads=1))
        [uploaded] = [p for p in node_cache.iterdir() if (p / MARKER).is_file() and p != installed]
        assert (tmp_path / "data" / "models" / uploaded.name / MARKER).is_file()
        assert directory_sha256(uploaded) == directory_sha256(tmp_path / "data" / "models" / uploaded.name)
        es.inference.delete(inference_id="two-upload-ep")
    finally:
        assert server.stop() in (0, -signal.SIGTERM)

    # The cluster was given by address: it is still up, without elserve's application.
    ray.init(address=two_nodes.address)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        assert not [a for a in serve.status().applications if a.startswith("elserve-")]
    finally:
        ray.shutdown()
