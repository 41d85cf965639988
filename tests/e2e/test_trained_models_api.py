"""The trained-model API end to end: configuration, start, update, stop, stats; backpressure; metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from elasticsearch import BadRequestError, ConflictError, Elasticsearch

from tests.support.hold import held, wait_until_held


def test_model_config_and_definition_status(es: Elasticsearch, elser_endpoint: str) -> None:
    configs = es.ml.get_trained_models(model_id=".elser_model_2", include="definition_status")
    assert configs["count"] == 1
    config = configs["trained_model_configs"][0]
    assert config["model_id"] == ".elser_model_2"
    assert config["model_type"] == "pytorch"
    assert config["fully_defined"] is True
    assert "SPLADE-tiny" in config["description"]


def test_start_update_stop_a_deployment(es: Elasticsearch, http: httpx.Client) -> None:
    started = es.ml.start_trained_model_deployment(
        model_id=".elser_model_2",
        deployment_id="ml-dep",
        number_of_allocations=1,
        threads_per_allocation=1,
        wait_for="fully_allocated",
    )["assignment"]
    assert started["task_parameters"]["deployment_id"] == "ml-dep"
    assert started["assignment_state"] == "started"
    [route] = started["routing_table"].values()
    assert route["current_allocations"] == 1 and route["routing_state"] == "started"

    with pytest.raises(BadRequestError) as again:
        es.ml.start_trained_model_deployment(model_id=".elser_model_2", deployment_id="ml-dep")
    assert again.value.body["error"]["reason"] == (
        "Could not start model deployment because an existing deployment with the same id [ml-dep] exist"
    )
    # A model may not take a current deployment's id (TransportPutTrainedModelAction).
    with pytest.raises(BadRequestError) as taken:
        es.ml.put_trained_model(model_id="ml-dep", model_type="pytorch", inference_config={"text_expansion": {}})
    assert taken.value.body["error"]["reason"] == (
        "Cannot create model [ml-dep] the id is the same as an current model deployment"
    )

    # An endpoint on the existing deployment copies its settings.
    endpoint = es.inference.put(
        task_type="sparse_embedding",
        inference_id="on-ml-dep",
        inference_config={"service": "elasticsearch", "service_settings": {"deployment_id": "ml-dep"}},
    )
    assert endpoint["service_settings"]["deployment_id"] == "ml-dep"
    assert es.inference.sparse_embedding(inference_id="on-ml-dep", input=["via the ML deployment"])

    updated = es.ml.update_trained_model_deployment(model_id="ml-dep", number_of_allocations=2)["assignment"]
    assert updated["task_parameters"]["number_of_allocations"] == 2
    stats = es.ml.get_trained_models_stats(model_id="ml-dep")["trained_model_stats"]
    assert [s["deployment_stats"]["deployment_id"] for s in stats] == ["ml-dep"]
    assert stats[0]["deployment_stats"]["allocation_status"]["allocation_count"] == 2

    with pytest.raises(ConflictError) as refused:
        es.ml.stop_trained_model_deployment(model_id="ml-dep")
    assert refused.value.body["error"]["reason"] == (
        "Cannot stop deployment [ml-dep] as it is used by inference endpoint [on-ml-dep]"
    )
    es.inference.delete(inference_id="on-ml-dep")
    assert es.ml.stop_trained_model_deployment(model_id="ml-dep").body == {"stopped": True}
    assert http.get("/_ml/trained_models/ml-dep/_stats").status_code == 404


def test_endpoint_deployments_are_updated_through_the_inference_api(es: Elasticsearch, elser_endpoint: str) -> None:
    with pytest.raises(ConflictError) as refused:
        es.ml.update_trained_model_deployment(model_id=elser_endpoint, number_of_allocations=2)
    assert refused.value.body["error"]["reason"] == (
        f"Cannot update deployment [{elser_endpoint}] as it was created by inference endpoint [{elser_endpoint}]. "
        "This model deployment must be updated through the inference API."
    )


def test_start_validation(http: httpx.Client) -> None:
    r = http.post(
        "/_ml/trained_models/.elser_model_2/deployment/_start",
        params={"deployment_id": "bad-threads", "threads_per_allocation": "3", "number_of_allocations": "0"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == (
        "Validation Failed: 1: [number_of_allocations] must be a positive integer;"
        "2: [threads_per_allocation] must be a power of 2 less than or equal to 32;"
    )
    r = http.post("/_ml/trained_models/no-such-model/deployment/_start")
    assert r.status_code == 404
    assert r.json()["error"]["reason"] == "Could not find trained model [no-such-model]"


def test_full_queue_answers_429(es: Elasticsearch, http: httpx.Client, server_hold_file: Path) -> None:
    es.ml.start_trained_model_deployment(
        model_id=".elser_model_2", deployment_id="tiny-queue", queue_capacity=1, wait_for="started"
    )
    es.inference.put(
        task_type="sparse_embedding",
        inference_id="tiny-queue-endpoint",
        inference_config={"service": "elasticsearch", "service_settings": {"deployment_id": "tiny-queue"}},
    )
    body = {"input": ["a long passage of many words " * 60] * 30}

    def post(_: int) -> httpx.Response:
        return http.post("/_inference/sparse_embedding/tiny-queue-endpoint", json=body)

    # The worker holds the first request until the others are answered: it fills the queue, and
    # each of the others is refused at once.
    with ThreadPoolExecutor(8) as pool:
        with held(server_hold_file):
            first = pool.submit(post, 0)
            wait_until_held(server_hold_file)
            rest = list(pool.map(post, range(1, 8)))
        answers = [first.result(), *rest]
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [429] * 7, statuses
    refused = next(r for r in answers if r.status_code == 429).json()
    assert refused["error"]["type"] == "es_rejected_execution_exception"
    assert refused["error"]["reason"] == "inference process queue is full. Unable to execute command"
    stats = es.ml.get_trained_models_stats(model_id="tiny-queue")["trained_model_stats"][0]["deployment_stats"]
    assert stats["rejected_execution_count"] == statuses.count(429)
    es.inference.delete(inference_id="tiny-queue-endpoint")
    es.ml.stop_trained_model_deployment(model_id="tiny-queue")


def test_prometheus_metrics(http: httpx.Client, elser_endpoint: str) -> None:
    http.post(f"/_inference/sparse_embedding/{elser_endpoint}", json={"input": ["count me"]})
    r = http.get("/_prometheus/metrics")
    assert r.status_code == 200
    text = r.text
    assert (
        'elserve_http_requests_total{method="POST",route="/_inference/{task_type}/{inference_id}",status="200"}' in text
    )
    assert f'elserve_allocations{{deployment="{elser_endpoint}"}} 1.0' in text
    assert "elserve_batch_tokens_bucket" in text
    assert httpx.get(str(http.base_url) + "/_prometheus/metrics").status_code == 401
