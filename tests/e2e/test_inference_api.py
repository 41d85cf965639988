"""The inference API end to end, through the official `elasticsearch` client."""

from __future__ import annotations

import warnings

import httpx
import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from tests.support.elser import elser_config

ELSER_BODY = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}}


def test_put_elser_deploys_and_warns(es: Elasticsearch) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        created = es.options(request_timeout=300).inference.put_elser(
            task_type="sparse_embedding",
            elser_inference_id="e2e-elser-alias",
            service="elser",
            service_settings={"num_allocations": 1, "num_threads": 1},
        )
    assert created["inference_id"] == "e2e-elser-alias"
    assert created["service"] == "elasticsearch"
    assert created["service_settings"]["model_id"] in (".elser_model_2", ".elser_model_2_linux-x86_64")
    assert created["chunking_settings"] == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("The [elser] service is deprecated") for m in messages), messages

    stats = es.ml.get_trained_models_stats(model_id="e2e-elser-alias")
    deployment = stats["trained_model_stats"][0]["deployment_stats"]
    assert deployment["deployment_id"] == "e2e-elser-alias"
    assert deployment["state"] == "started"
    assert deployment["allocation_status"] == {
        "allocation_count": 1,
        "target_allocation_count": 1,
        "state": "fully_allocated",
    }
    es.inference.delete(inference_id="e2e-elser-alias")


def test_sparse_embedding(es: Elasticsearch, elser_endpoint: str) -> None:
    texts = ["The quick brown fox jumps over the lazy dog", "élan vital ☕ 東京"]
    result = es.inference.sparse_embedding(inference_id=elser_endpoint, input=texts)
    embeddings = result["sparse_embedding"]
    assert len(embeddings) == 2
    for item in embeddings:
        assert item["is_truncated"] is False
        assert item["embedding"]
        weights = list(item["embedding"].values())
        assert all(w > 0 for w in weights)
        assert weights == sorted(weights, reverse=True)
    assert "fox" in embeddings[0]["embedding"]


def test_inference_with_a_single_string_and_generic_route(es: Elasticsearch, elser_endpoint: str) -> None:
    by_type = es.inference.sparse_embedding(inference_id=elser_endpoint, input="hello world")
    generic = es.inference.inference(inference_id=elser_endpoint, input=["hello world"])
    assert by_type["sparse_embedding"] == generic["sparse_embedding"]


def test_long_input_is_truncated(es: Elasticsearch, elser_endpoint: str) -> None:
    result = es.inference.sparse_embedding(inference_id=elser_endpoint, input=["word " * 1000])
    assert result["sparse_embedding"][0]["is_truncated"] is True


def test_get_forms(es: Elasticsearch, elser_endpoint: str) -> None:
    listed = es.inference.get()["endpoints"]
    ids = [e["inference_id"] for e in listed]
    assert ids == sorted(ids)
    assert elser_endpoint in ids and ".elser-2-elasticsearch" in ids
    one = es.inference.get(inference_id=elser_endpoint)["endpoints"]
    assert [e["inference_id"] for e in one] == [elser_endpoint]
    typed = es.inference.get(task_type="sparse_embedding", inference_id=elser_endpoint)["endpoints"]
    assert typed == one
    by_type = es.inference.get(task_type="sparse_embedding")["endpoints"]
    assert elser_endpoint in [e["inference_id"] for e in by_type]
    assert one[0]["service_settings"]["num_allocations"] == 1


def test_get_missing_and_mismatched(es: Elasticsearch, elser_endpoint: str) -> None:
    with pytest.raises(NotFoundError) as missing:
        es.inference.get(inference_id="no-such-endpoint")
    assert missing.value.body["error"]["reason"] == "Inference endpoint not found [no-such-endpoint]"
    with pytest.raises(BadRequestError) as mismatch:
        es.inference.get(task_type="text_embedding", inference_id=elser_endpoint)
    assert mismatch.value.body["error"]["reason"] == (
        "Requested task type [text_embedding] does not match the inference endpoint's task type [sparse_embedding]"
    )


def test_inference_errors(es: Elasticsearch, http: httpx.Client, elser_endpoint: str) -> None:
    with pytest.raises(NotFoundError):
        es.inference.sparse_embedding(inference_id="no-such-endpoint", input=["x"])
    r = http.post(f"/_inference/sparse_embedding/{elser_endpoint}", json={})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "action_request_validation_exception"
    assert r.json()["error"]["reason"] == "Validation Failed: 1: Field [input] cannot be null;"
    r = http.post(f"/_inference/sparse_embedding/{elser_endpoint}", json={"input": []})
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "Validation Failed: 1: Field [input] cannot be an empty array;"
    for bad in ([None], None, {"a": 1}, [["nested"]]):
        r = http.post(f"/_inference/sparse_embedding/{elser_endpoint}", json={"input": bad})
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["type"] == "x_content_parse_exception"
    # Elasticsearch's parser reads a number in the list as its text.
    assert http.post(f"/_inference/sparse_embedding/{elser_endpoint}", json={"input": [1]}).status_code == 200
    r = http.post(f"/_inference/text_embedding/{elser_endpoint}", json={"input": ["x"]})
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == (
        "Incompatible task_type, the requested type [text_embedding] does not match the model type [sparse_embedding]"
    )


def test_put_validation(http: httpx.Client) -> None:
    r = http.put("/_inference/sparse_embedding/Bad_ID", json=ELSER_BODY)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "action_request_validation_exception"
    r = http.put("/_inference/sparse_embedding/x1", json={"service": "elasticsearch", "service_settings": {}})
    assert r.status_code == 400
    r = http.put("/_inference/sparse_embedding/x2", json={"service": "nope", "service_settings": {}})
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "Unknown service [nope]"
    r = http.put("/_inference/bogus_type/x3", json=ELSER_BODY)
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "Unknown task_type [bogus_type]"
    r = http.put(
        "/_inference/sparse_embedding/x4",
        json={"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 3}},
    )
    assert r.status_code == 400
    assert "[threads_per_allocation] must be a power of 2 less than or equal to 32" in r.json()["error"]["reason"]
    # None of them were stored.
    ids = [e["inference_id"] for e in http.get("/_inference").json()["endpoints"]]
    assert not {"x1", "x2", "x3", "x4"} & set(ids)


def test_duplicate_id(http: httpx.Client, elser_endpoint: str) -> None:
    r = http.put(f"/_inference/sparse_embedding/{elser_endpoint}", json=ELSER_BODY)
    assert r.status_code == 400
    # Elasticsearch checks the id against running deployments before the stored endpoints.
    assert r.json()["error"]["reason"] == (
        f"Inference endpoint IDs must be unique. Requested inference endpoint ID [{elser_endpoint}] matches "
        "existing trained model ID(s) but must not."
    )


def test_update_allocations(es: Elasticsearch) -> None:
    es.options(request_timeout=300).inference.put(
        task_type="sparse_embedding",
        inference_id="e2e-update",
        inference_config=elser_config(),
    )
    updated = es.inference.update(
        task_type="sparse_embedding",
        inference_id="e2e-update",
        inference_config={"service_settings": {"num_allocations": 2}},
    )
    assert updated["service_settings"]["num_allocations"] == 2
    stats = es.ml.get_trained_models_stats(model_id="e2e-update")["trained_model_stats"][0]["deployment_stats"]
    assert stats["allocation_status"] == {
        "allocation_count": 2,
        "target_allocation_count": 2,
        "state": "fully_allocated",
    }
    result = es.inference.sparse_embedding(inference_id="e2e-update", input=["after the update"])
    assert result["sparse_embedding"][0]["embedding"]
    es.inference.delete(inference_id="e2e-update")


def test_delete(es: Elasticsearch, http: httpx.Client) -> None:
    es.options(request_timeout=300).inference.put(
        inference_id="e2e-delete",
        inference_config=elser_config(task_type="sparse_embedding"),
    )
    dry = es.inference.delete(inference_id="e2e-delete", dry_run=True)
    assert dry.body == {"acknowledged": False, "pipelines": [], "indexes": [], "error_message": ""}
    assert es.inference.get(inference_id="e2e-delete")["endpoints"]
    done = es.inference.delete(inference_id="e2e-delete", task_type="sparse_embedding")
    assert done.body == {"acknowledged": True, "pipelines": [], "indexes": []}
    with pytest.raises(NotFoundError):
        es.inference.get(inference_id="e2e-delete")
    # The deployment it started is gone too.
    assert http.get("/_ml/trained_models/e2e-delete/_stats").status_code == 404
    with pytest.raises(NotFoundError):
        es.inference.delete(inference_id="e2e-delete")


def test_preconfigured_endpoint(es: Elasticsearch, http: httpx.Client) -> None:
    listed = es.inference.get(inference_id=".elser-2-elasticsearch")["endpoints"][0]
    assert listed["service"] == "elasticsearch"
    assert listed["service_settings"]["adaptive_allocations"] == {
        "enabled": True,
        "min_number_of_allocations": 0,
        "max_number_of_allocations": 32,
    }
    result = es.options(request_timeout=300).inference.sparse_embedding(
        inference_id=".elser-2-elasticsearch", input=["deployed on first use"]
    )
    assert result["sparse_embedding"][0]["embedding"]
    r = http.delete("/_inference/.elser-2-elasticsearch")
    assert r.status_code == 400
    assert "is a reserved inference endpoint" in r.json()["error"]["reason"]


def test_trained_model_stats(es: Elasticsearch, elser_endpoint: str) -> None:
    stats = es.ml.get_trained_models_stats()
    models = {s["model_id"] for s in stats["trained_model_stats"]}
    assert ".elser_model_2" in models
    mine = es.ml.get_trained_models_stats(model_id=elser_endpoint)
    entry = mine["trained_model_stats"][0]
    assert entry["model_size_stats"]["model_size_bytes"] > 10_000_000
    d = entry["deployment_stats"]
    for key in ("threads_per_allocation", "number_of_allocations", "queue_capacity", "nodes", "start_time"):
        assert key in d
    node = d["nodes"][0]
    assert node["routing_state"] == {"routing_state": "started"}
    assert len(node["node"]) == 1
    with pytest.raises(NotFoundError):
        es.ml.get_trained_models_stats(model_id="no-such-model")


def test_http_vectors_equal_the_encoder(es: Elasticsearch, elser_endpoint: str, server) -> None:
    """What travels over HTTP is the encoder's exact vector, token names mapped as Elasticsearch maps them."""
    from elserve.runtime import Encoder, to_token_weights
    from tests.runtime.texts import VARIED_TEXTS

    model_dir = next(p for p in (server.data_dir / "models").iterdir() if (p / "model.safetensors").exists())
    encoder = Encoder.load(model_dir, num_threads=1)
    texts = VARIED_TEXTS[:40]
    served = es.inference.sparse_embedding(inference_id=elser_endpoint, input=texts)["sparse_embedding"]
    for text, item, (vector, truncated) in zip(texts, served, encoder.encode(texts), strict=True):
        expected = to_token_weights(vector, encoder.tokenizer.names)
        assert item["is_truncated"] is truncated, text
        assert list(item["embedding"]) == list(expected), text
        for token, weight in expected.items():
            assert abs(item["embedding"][token] - weight) <= 1e-4


def test_put_timeout_answers_408_and_keeps_deploying(es: Elasticsearch, http: httpx.Client) -> None:
    import time

    r = http.put(
        "/_inference/sparse_embedding/e2e-timeout",
        params={"timeout": "1ms"},
        json=elser_config(),
    )
    assert r.status_code == 408
    assert r.json()["error"]["reason"] == (
        "Timed out after [1ms] waiting for model deployment to start. "
        "Use the trained model stats API to track the state of the deployment."
    )
    assert es.inference.get(inference_id="e2e-timeout")["endpoints"]  # stored
    for _ in range(3000):  # the deployment comes up (the bound, 5 min, only guards against a hang)
        stats = es.ml.get_trained_models_stats(model_id="e2e-timeout")["trained_model_stats"][0]
        if stats["deployment_stats"]["allocation_status"]["state"] == "fully_allocated":
            break
        time.sleep(0.1)
    assert stats["deployment_stats"]["allocation_status"]["state"] == "fully_allocated"
    assert es.inference.sparse_embedding(inference_id="e2e-timeout", input=["ready now"])
    es.inference.delete(inference_id="e2e-timeout")


def test_sixteen_concurrent_clients_get_the_single_request_vectors(es: Elasticsearch, elser_endpoint: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.runtime.texts import VARIED_TEXTS

    groups = [VARIED_TEXTS[i::16][:6] for i in range(16)]
    alone = [es.inference.sparse_embedding(inference_id=elser_endpoint, input=g)["sparse_embedding"] for g in groups]
    with ThreadPoolExecutor(16) as pool:
        together = list(
            pool.map(
                lambda g: es.inference.sparse_embedding(inference_id=elser_endpoint, input=g)["sparse_embedding"],
                groups,
            )
        )
    for single, concurrent in zip(alone, together, strict=True):
        for a, b in zip(single, concurrent, strict=True):
            assert a["is_truncated"] == b["is_truncated"]
            assert a["embedding"].keys() == b["embedding"].keys()
            assert all(abs(a["embedding"][t] - b["embedding"][t]) <= 1e-4 for t in a["embedding"])
