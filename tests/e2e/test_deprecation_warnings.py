"""The `Warning` header on every answer to a deprecated request (issue 25, part 6): the `elser` PUT's
warnings are on its errors and its 408 too, as Elasticsearch sends the thread context's warnings with
every response."""

from __future__ import annotations

import httpx
import pytest
from elasticsearch import BadRequestError, Elasticsearch

ELSER = "The [elser] service is deprecated and will be removed in a future release."
NULL_MODEL_ID = "Putting elasticsearch service inference endpoints (including elser service) without a model_id field"


def _warnings(r: httpx.Response) -> list[str]:
    values = r.headers.get_list("warning")
    assert all(v.startswith("299 Elasticsearch-9.5.0-") and v.endswith('"') for v in values), values
    return [v.split(" ", 2)[2].strip('"') for v in values]


def test_refused_elser_put_carries_its_warnings(http: httpx.Client) -> None:
    body = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1, "bogus": 1}}
    r = http.put("/_inference/sparse_embedding/warn-refused", json=body)
    assert r.status_code == 400, r.text
    assert (
        r.json()["error"]["reason"]
        == "Model configuration contains settings [{bogus=1}] unknown to the [elasticsearch] service"
    )
    texts = _warnings(r)
    assert len(texts) == 2
    assert texts[0].startswith(NULL_MODEL_ID) and texts[1].startswith(ELSER)
    assert http.get("/_inference/warn-refused").status_code == 404


def test_a_warning_comes_only_once_it_is_due(http: httpx.Client) -> None:
    # Refused before the service's rules ran (no service_settings): nothing was deprecated yet.
    r = http.put("/_inference/sparse_embedding/warn-early", json={"service": "elser"})
    assert r.status_code == 400 and "warning" not in r.headers
    # The elasticsearch service: no deprecation at all.
    body = {
        "service": "elasticsearch",
        "service_settings": {"model_id": ".elser_model_2", "num_threads": 1, "bogus": 1},
    }
    r = http.put("/_inference/sparse_embedding/warn-es", json=body)
    assert r.status_code == 400 and "warning" not in r.headers


def test_elser_put_that_times_out_carries_its_warning(http: httpx.Client) -> None:
    body = {
        "service": "elser",
        "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
    }
    r = http.put("/_inference/sparse_embedding/warn-408", params={"timeout": "1ms"}, json=body)
    try:
        assert r.status_code == 408, r.text
        assert r.json()["error"]["reason"].startswith("Timed out after [1ms] waiting for model deployment to start.")
        assert [t for t in _warnings(r) if t.startswith(ELSER)], r.headers
    finally:
        http.delete("/_inference/warn-408")


def test_the_clients_error_holds_the_warning(es: Elasticsearch) -> None:
    # The client turns a success's warnings into Python warnings; an error's stay in its headers.
    with pytest.raises(BadRequestError) as caught:
        es.inference.put_elser(
            task_type="sparse_embedding",
            elser_inference_id="warn-client",
            service="elser",
            service_settings={"num_allocations": 1, "num_threads": 1, "bogus": 1},
        )
    assert ELSER in caught.value.meta.headers.get("warning", ""), caught.value.meta.headers


def test_no_warning_on_ordinary_answers(http: httpx.Client) -> None:
    for r in (http.get("/"), http.get("/_inference"), http.get("/_inference/no-such")):
        assert "warning" not in r.headers
