"""`GET /_inference/_services[/{task_type}]` (issue 25, part 5): what Kibana builds its endpoint forms from.

The client has no method for it (the API is internal in serverless); `perform_request` sends it as
Kibana does.
"""

from __future__ import annotations

import httpx
from elasticsearch import Elasticsearch

from elserve.endpoints.service_configuration import DEFAULT_NUM_ALLOCATIONS, DEFAULT_NUM_THREADS

ELASTICSEARCH_SERVICE = {
    "service": "elasticsearch",
    "name": "Elasticsearch",
    "task_types": ["sparse_embedding"],
    "configurations": {
        "num_allocations": {
            "default_value": DEFAULT_NUM_ALLOCATIONS,
            "description": "The total number of allocations this model is assigned across machine learning nodes.",
            "label": "Number Allocations",
            "required": True,
            "sensitive": False,
            "updatable": True,
            "type": "int",
            "supported_task_types": ["sparse_embedding"],
        },
        "num_threads": {
            "default_value": DEFAULT_NUM_THREADS,
            "description": "Sets the number of threads used by each model allocation during inference.",
            "label": "Number Threads",
            "required": True,
            "sensitive": False,
            "updatable": False,
            "type": "int",
            "supported_task_types": ["sparse_embedding"],
        },
        "model_id": {
            "description": "The name of the model to use for the inference task.",
            "label": "Model ID",
            "required": True,
            "sensitive": False,
            "updatable": False,
            "type": "str",
            "supported_task_types": ["sparse_embedding"],
        },
    },
}


def test_all_services(es: Elasticsearch) -> None:
    answer = es.perform_request("GET", "/_inference/_services", headers={"accept": "application/json"})
    assert answer.body == [ELASTICSEARCH_SERVICE]
    # Elasticsearch's own defaults, in the order its HashMap prints them.
    assert list(answer.body[0]["configurations"]) == ["num_allocations", "num_threads", "model_id"]
    assert (DEFAULT_NUM_ALLOCATIONS, DEFAULT_NUM_THREADS) == (1, 2)


def test_by_task_type(http: httpx.Client) -> None:
    assert http.get("/_inference/_services/sparse_embedding").json() == [ELASTICSEARCH_SERVICE]
    assert http.get("/_inference/_services/any").json() == [ELASTICSEARCH_SERVICE]
    assert http.get("/_inference/_services/SPARSE_EMBEDDING").json() == [ELASTICSEARCH_SERVICE]
    # Task types elserve does not serve: no service supports them here.
    assert http.get("/_inference/_services/text_embedding").json() == []
    assert http.get("/_inference/_services/rerank").json() == []
    r = http.get("/_inference/_services/bogus")
    assert r.status_code == 400
    assert r.json()["error"] == {
        "root_cause": [{"type": "status_exception", "reason": "Unknown task_type [bogus]"}],
        "type": "status_exception",
        "reason": "Unknown task_type [bogus]",
    }


def test_services_is_not_an_endpoint_id(http: httpx.Client) -> None:
    # `_services` is routed before `/_inference/{inference_id}`; other ids still reach the endpoints.
    assert http.get("/_inference/_services").status_code == 200
    assert http.get("/_inference/no-such-endpoint").status_code == 404
    assert http.get("/_inference/_services", params={"filter_path": "service"}).json() == [{"service": "elasticsearch"}]


def test_needs_monitor_inference(http: httpx.Client, server) -> None:
    http.put("/_security/role/services_reader", json={"cluster": ["monitor_inference"]}).raise_for_status()
    http.put("/_security/role/services_none", json={"cluster": ["monitor_ml"]}).raise_for_status()
    http.put(
        "/_security/user/services_ok", json={"password": "services-password", "roles": ["services_reader"]}
    ).raise_for_status()
    http.put(
        "/_security/user/services_no", json={"password": "services-password", "roles": ["services_none"]}
    ).raise_for_status()
    with httpx.Client(base_url=server.url, auth=("services_ok", "services-password"), timeout=60) as reader:
        assert reader.get("/_inference/_services").status_code == 200
    with httpx.Client(base_url=server.url, auth=("services_no", "services-password"), timeout=60) as other:
        r = other.get("/_inference/_services")
        assert r.status_code == 403
        assert r.json()["error"]["reason"].startswith(
            "action [cluster:monitor/xpack/inference/services/get] is unauthorized for user [services_no]"
        )
