"""`pass_through` models, the deployment inference cache, its `_clear`, and model aliases, end to end
with the official client against a real server and its workers."""

from __future__ import annotations

import httpx
import pytest
from elasticsearch import ApiError, Elasticsearch

from elserve.bytesize import byte_size_text
from tests.pass_through_model import CONFIG, VOCABULARY, definition_part

MODEL = "e2e-pass-through"
OTHER = "e2e-pass-through-other"


def _upload(es: Elasticsearch, model_id: str) -> None:
    es.ml.put_trained_model(model_id=model_id, **CONFIG)
    es.ml.put_trained_model_vocabulary(model_id=model_id, vocabulary=VOCABULARY)
    es.ml.put_trained_model_definition_part(model_id=model_id, part=0, **definition_part())


@pytest.fixture(scope="module")
def models(es: Elasticsearch) -> list[str]:
    for model_id in (MODEL, OTHER):
        _upload(es, model_id)
    yield [MODEL, OTHER]
    for model_id in (MODEL, OTHER):
        es.ml.delete_trained_model(model_id=model_id, force=True)


def _error(call) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as raised:
        call()
    error = raised.value.body["error"]
    return raised.value.status_code, error["type"], error["reason"]


def _node_stats(es: Elasticsearch, model_id: str) -> dict:
    return es.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"][0]["deployment_stats"]["nodes"][0]


def test_infer_with_the_cache_and_clear_it(es: Elasticsearch, models: list[str]) -> None:
    started = es.ml.start_trained_model_deployment(
        model_id=MODEL, deployment_id="e2e-pt-cached", cache_size="10kb", wait_for="started"
    )
    assert started["assignment"]["task_parameters"]["cache_size"] == "10kb"
    try:
        first = es.ml.infer_trained_model(model_id=MODEL, docs=[{"input": "words are my"}])
        # The model answers each token's id: the document's own tokens, no specials.
        assert first["inference_results"] == [{"predicted_value": [[5.0], [3.0], [4.0]]}]
        es.ml.infer_trained_model(model_id=MODEL, docs=[{"input": "these"}])
        again = es.ml.infer_trained_model(model_id=MODEL, docs=[{"input": "words are my"}])
        assert again["inference_results"] == first["inference_results"]
        stats = _node_stats(es, MODEL)
        assert (stats["inference_count"], stats["inference_cache_hit_count"]) == (3, 1)
        assert es.ml.clear_trained_model_deployment_cache(model_id="e2e-pt-cached").body == {"cleared": True}
        es.ml.infer_trained_model(model_id=MODEL, docs=[{"input": "words are my"}])
        stats = _node_stats(es, MODEL)
        assert (stats["inference_count"], stats["inference_cache_hit_count"]) == (4, 1)  # a miss after _clear
        # Another results field is another answer: not taken from the cache.
        renamed = es.ml.infer_trained_model(
            model_id=MODEL,
            docs=[{"input": "words are my"}],
            inference_config={"pass_through": {"results_field": "out"}},
        )
        assert renamed["inference_results"] == [{"out": [[5.0], [3.0], [4.0]]}]
        assert _node_stats(es, MODEL)["inference_cache_hit_count"] == 1
    finally:
        es.ml.stop_trained_model_deployment(model_id="e2e-pt-cached")


def test_no_cache_and_the_default_size(es: Elasticsearch, models: list[str], http: httpx.Client) -> None:
    started = es.ml.start_trained_model_deployment(model_id=MODEL, cache_size="0", wait_for="started")
    try:
        assert started["assignment"]["task_parameters"]["cache_size"] == "0"
        for _ in range(2):
            es.ml.infer_trained_model(model_id=MODEL, docs=[{"input": "words"}])
        stats = _node_stats(es, MODEL)
        assert (stats["inference_count"], stats["inference_cache_hit_count"]) == (2, 0)
    finally:
        es.ml.stop_trained_model_deployment(model_id=MODEL)
    started = es.ml.start_trained_model_deployment(model_id=MODEL, wait_for="started")
    try:
        params = started["assignment"]["task_parameters"]
        assert params["cache_size"] == byte_size_text(params["model_bytes"])  # the model's size by default
    finally:
        es.ml.stop_trained_model_deployment(model_id=MODEL)
    r = http.post(f"/_ml/trained_models/{MODEL}/deployment/_start", params={"cache_size": "10 parsecs"})
    assert r.status_code == 400 and "failed to parse setting [cache_size]" in r.json()["error"]["reason"]


def test_clear_cache_of_an_unknown_deployment(es: Elasticsearch) -> None:
    assert _error(lambda: es.ml.clear_trained_model_deployment_cache(model_id="no-such-deployment")) == (
        404,
        "resource_not_found_exception",
        "No known model deployment with id [no-such-deployment]",
    )


def test_model_aliases(es: Elasticsearch, models: list[str]) -> None:
    assert es.ml.put_trained_model_alias(model_alias="e2e-pt", model_id=MODEL).body == {"acknowledged": True}
    try:
        got = es.ml.get_trained_models(model_id="e2e-pt")
        assert got["count"] == 1 and got["trained_model_configs"][0]["model_id"] == MODEL
        assert got["trained_model_configs"][0]["metadata"]["model_aliases"] == ["e2e-pt"]
        assert es.ml.get_trained_models_stats(model_id="e2e-pt")["trained_model_stats"][0]["model_id"] == MODEL
        status, _, reason = _error(lambda: es.ml.put_trained_model_alias(model_alias="e2e-pt", model_id=OTHER))
        assert status == 400 and reason.startswith("cannot assign model_alias [e2e-pt] to model_id")
        es.ml.start_trained_model_deployment(model_id=MODEL, wait_for="started")
        try:
            inferred = es.ml.infer_trained_model(model_id="e2e-pt", docs=[{"input": "my"}])
            assert inferred["inference_results"] == [{"predicted_value": [[4.0]]}]
            assert _error(
                lambda: es.ml.put_trained_model_alias(model_alias="e2e-pt", model_id=OTHER, reassign=True)
            ) == (
                400,
                "status_exception",
                f"cannot reassign model_alias [e2e-pt] to model [{OTHER}] from model [{MODEL}] as it is not yet deployed",  # noqa: E501  # Elasticsearch's message, whole so that it greps
            )
        finally:
            es.ml.stop_trained_model_deployment(model_id=MODEL)
        es.ml.put_trained_model_alias(model_alias="e2e-pt", model_id=OTHER, reassign=True)
        assert es.ml.get_trained_models(model_id="e2e-pt")["trained_model_configs"][0]["model_id"] == OTHER
        assert _error(lambda: es.ml.put_trained_model(model_id="e2e-pt", **CONFIG))[2] == (
            "requested model_id [e2e-pt] is the same as an existing model_alias. Model model_aliases and ids must be unique"  # noqa: E501  # Elasticsearch's message, whole so that it greps
        )
        assert _error(lambda: es.ml.delete_trained_model_alias(model_alias="e2e-pt", model_id=MODEL))[:2] == (
            409,
            "status_exception",
        )
    finally:
        es.ml.delete_trained_model_alias(model_alias="e2e-pt", model_id=OTHER)
    assert _error(lambda: es.ml.delete_trained_model_alias(model_alias="e2e-pt", model_id=OTHER)) == (
        404,
        "status_exception",
        "model_alias [e2e-pt] could not be found",
    )


def test_an_inference_endpoint_refuses_a_pass_through_model(es: Elasticsearch, models: list[str]) -> None:
    status, _, reason = _error(
        lambda: es.inference.put(
            task_type="sparse_embedding",
            inference_id="e2e-pt-endpoint",
            inference_config={
                "service": "elasticsearch",
                "service_settings": {"model_id": MODEL, "num_allocations": 1, "num_threads": 1},
            },
        )
    )
    assert status == 400 and MODEL in reason


def test_privileges(es: Elasticsearch, server, models: list[str]) -> None:
    """Clearing a cache and managing aliases are admin actions: `monitor_ml` does not grant them."""
    es.security.put_role(name="e2e-ml-monitor", cluster=["monitor_ml"])
    es.security.put_user(username="e2e-ml-watcher", password="watcher-pass", roles=["e2e-ml-monitor"])
    watcher = Elasticsearch(server.url, basic_auth=("e2e-ml-watcher", "watcher-pass"), request_timeout=60)
    status, kind, reason = _error(lambda: watcher.ml.clear_trained_model_deployment_cache(model_id="x"))
    assert (status, kind) == (403, "security_exception")
    assert "cluster:admin/xpack/ml/trained_models/deployment/clear_cache" in reason
    status, _, reason = _error(lambda: watcher.ml.put_trained_model_alias(model_alias="w", model_id=MODEL))
    assert status == 403 and "cluster:admin/xpack/ml/inference/model_aliases/put" in reason
    status, _, reason = _error(lambda: watcher.ml.delete_trained_model_alias(model_alias="w", model_id=MODEL))
    assert status == 403 and "cluster:admin/xpack/ml/inference/model_aliases/delete" in reason
