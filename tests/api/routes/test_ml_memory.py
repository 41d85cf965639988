"""`GET /_ml/memory[/{node_id}]/_stats` (api/routes/ml_memory.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.support.errors import error_of


def test_this_node_in_bytes_and_no_jvm(client: TestClient) -> None:
    r = client.get("/_ml/memory/_stats", params={"timeout": "1s", "master_timeout": "1s"})
    assert r.status_code == 200
    body = r.json()
    assert body["_nodes"] == {"total": 1, "successful": 1, "failed": 0}
    [node] = body["nodes"].values()
    assert node["mem"]["total_in_bytes"] > 0 and "total" not in node["mem"]
    assert node["mem"]["ml"]["max_in_bytes"] > 0
    assert node["mem"]["ml"]["native_inference_in_bytes"] == 0  # no deployment runs
    assert node["jvm"] == {"heap_max_in_bytes": 0, "java_inference_max_in_bytes": 0, "java_inference_in_bytes": 0}
    assert all(k.startswith("ml.") for k in node["attributes"])


def test_human_adds_the_sizes_as_text(client: TestClient) -> None:
    [node] = client.get("/_ml/memory/_stats", params={"human": "true"}).json()["nodes"].values()
    assert isinstance(node["mem"]["total"], str) and node["mem"]["total_in_bytes"] > 0
    assert node["jvm"]["heap_max"] == "0b"


def test_another_node_id_selects_nothing(client: TestClient) -> None:
    body = client.get("/_ml/memory/not-this-node/_stats").json()
    assert body["_nodes"] == {"total": 0, "successful": 0, "failed": 0} and body["nodes"] == {}


def test_bad_parameters_are_refused(client: TestClient) -> None:
    assert error_of(client.get("/_ml/memory/_stats", params={"human": "maybe"})) == (
        400,
        "illegal_argument_exception",
        "Failed to parse value [maybe] as only [true] or [false] are allowed.",
    )
    assert error_of(client.get("/_ml/memory/_stats", params={"bogus": "1"})) == (
        400,
        "illegal_argument_exception",
        "request [/_ml/memory/_stats] contains unrecognized parameter: [bogus]",
    )
