"""Failures leave nothing behind (issue 25), over HTTP with the official client, on a node of 2 processors.

A model whose workers cannot load (tests/support/unloadable_model.py: real processes, no mock) fails its starts;
a start that fails before its answer leaves no deployment (Elasticsearch deletes it), an endpoint `PUT`
that is refused or fails stores nothing, and a deployment that fails after a 408 stays `failed` in stats
holding no processor. A good `PUT` then fits with no `_stop` in between.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from typer.testing import CliRunner

from elserve.cli import app
from tests.support.clients import make_client
from tests.support.server import Server
from tests.support.unloadable_model import build_unloadable_dir
from tests.support.waiting import wait_until

LIMITS = ["--processors", "2", "--ml-memory", "4gb"]
LONG = "300s"  # a start's bound against a hang on a loaded machine, not its expected time


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, splade_model_dir: Path) -> Iterator[Server]:
    """A server of 2 processors with `good` (SPLADE-tiny) and `broken` (its weights do not load) imported."""
    root = tmp_path_factory.mktemp("failed-starts")
    data = root / "data"
    broken = build_unloadable_dir(root / "broken")
    for model_id, path in (("good", splade_model_dir), ("broken", broken)):
        result = CliRunner().invoke(
            app, ["models", "import", f"file:{path}", "--model-id", model_id, "--data-dir", str(data)]
        )
        assert result.exit_code == 0, result.output
    with Server(data, args=LIMITS).start() as srv:
        yield srv


@pytest.fixture
def es(server: Server) -> Elasticsearch:
    # A 429 is an answer under test here, not a reason for the client to try again.
    return make_client(server, retry_on_status=()).options(request_timeout=300)


def _put(es: Elasticsearch, inference_id: str, model_id: str, allocations: int, timeout: str = LONG) -> dict:
    return es.inference.put(
        task_type="sparse_embedding",
        inference_id=inference_id,
        inference_config={
            "service": "elasticsearch",
            "service_settings": {"model_id": model_id, "num_allocations": allocations, "num_threads": 1},
        },
        timeout=timeout,
    )


def _refused(call) -> tuple[int, dict]:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status_code, refused.value.body["error"]


def _deployments(es: Elasticsearch, model_id: str) -> dict[str, dict]:
    """The model's deployments in `_stats`, by id (none: the model alone is listed)."""
    entries = es.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"]
    return {e["deployment_stats"]["deployment_id"]: e["deployment_stats"] for e in entries if "deployment_stats" in e}


def test_failed_starts_and_a_refused_put_leave_room_for_a_good_put(es: Elasticsearch) -> None:
    # A `_start` whose workers fail: 500 with the reason, and no deployment left (Elasticsearch's
    # deleteFailedDeployment), so the same start can be tried again.
    for _ in range(2):
        status, error = _refused(
            lambda: es.ml.start_trained_model_deployment(
                model_id="broken", deployment_id="broken-start", number_of_allocations=2, timeout=LONG
            )
        )
        assert status == 500 and "do not match config.json" in error["reason"], error
        assert _deployments(es, "broken") == {}

    # An endpoint PUT whose deployment fails: 500 with the reason, nothing stored, nothing deployed.
    status, error = _refused(lambda: _put(es, "broken-ep", "broken", 2))
    assert status == 500 and "Could not start deployment [broken-ep]" in error["reason"], error
    assert "do not match config.json" in error["reason"]
    with pytest.raises(NotFoundError):
        es.inference.get(inference_id="broken-ep")
    assert _deployments(es, "broken") == {}

    # A PUT refused for capacity (3 allocations on 2 processors): 429, nothing stored; the same PUT
    # again is refused the same way, not as an endpoint that already exists.
    for _ in range(2):
        status, error = _refused(lambda: _put(es, "too-big", "good", 3))
        assert status == 429, error
        assert error["reason"] == (
            "Could not start deployment because there are not enough resources to provide all requested allocations"
        )
        with pytest.raises(NotFoundError):
            es.inference.get(inference_id="too-big")
        assert "too-big" not in {e["inference_id"] for e in es.inference.get()["endpoints"]}

    # After all that, 2 allocations of a good model fit on the 2 processors, with no `_stop` by hand.
    try:
        created = _put(es, "good-ep", "good", 2)
        assert created["service_settings"]["num_allocations"] == 2
        [result] = es.inference.sparse_embedding(inference_id="good-ep", input=["hello world"])["sparse_embedding"]
        assert result["embedding"]
        stats = _deployments(es, "good")["good-ep"]
        assert stats["allocation_status"]["allocation_count"] == 2
    finally:
        es.inference.delete(inference_id="good-ep")


def test_a_put_that_times_out_keeps_its_endpoint_and_deploys(es: Elasticsearch) -> None:
    # 408: the endpoint stays and its deployment comes up in the background (as Elasticsearch).
    status, error = _refused(lambda: _put(es, "late-ep", "good", 1, timeout="1ms"))
    assert status == 408, error
    assert error["reason"] == (
        "Timed out after [1ms] waiting for model deployment to start. "
        "Use the trained model stats API to track the state of the deployment."
    )
    assert es.inference.get(inference_id="late-ep")["endpoints"][0]["inference_id"] == "late-ep"
    wait_until(lambda: _deployments(es, "good")["late-ep"]["allocation_status"]["state"] == "fully_allocated")
    assert es.inference.sparse_embedding(inference_id="late-ep", input=["ready now"])["sparse_embedding"]

    # A deployment that fails after its 408: the endpoint stays, the deployment shows `failed` with its
    # reason, and it holds no processor: the node's last one still takes a good deployment.
    status, _ = _refused(lambda: _put(es, "broken-late", "broken", 1, timeout="1ms"))
    assert status == 408
    wait_until(lambda: _deployments(es, "broken").get("broken-late", {}).get("state") == "failed")
    failed = _deployments(es, "broken")["broken-late"]
    assert "do not match config.json" in failed["reason"]
    assert es.inference.get(inference_id="broken-late")["endpoints"]
    status, error = _refused(lambda: es.inference.sparse_embedding(inference_id="broken-late", input=["x"]))
    assert status == 409 and error["reason"] == "Trained model [broken-late] is [failed]"
    try:
        _put(es, "second-ep", "good", 1)
        # Deleting the endpoint removes the failed deployment it created: nothing lingers.
        assert es.inference.delete(inference_id="broken-late")["acknowledged"]
        assert _deployments(es, "broken") == {}
    finally:
        for inference_id in ("late-ep", "second-ep"):
            es.inference.delete(inference_id=inference_id)
