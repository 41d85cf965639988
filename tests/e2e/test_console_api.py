"""What the console stands on, over HTTP: its assets (served to anyone, holding no data, under a
strict policy), `_has_privileges` as Elasticsearch answers it, and `GET /_elserve/errors`."""

from __future__ import annotations

from importlib import resources

import httpx
import pytest
from elasticsearch import ApiError, Elasticsearch

from tests.support.clients import make_client
from tests.support.server import Server


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/_elserve/console", "text/html"),
        ("/_elserve/console/", "text/html"),
        ("/_elserve/console/console.js", "text/javascript"),
        ("/_elserve/console/console.css", "text/css"),
    ],
)
def test_assets_need_no_credentials_and_hold_no_data(server: Server, path: str, media_type: str) -> None:
    answer = httpx.get(server.url + path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    # The shipped file itself, byte for byte: nothing of the server's state is in it.
    name = path.rsplit("/", 1)[1] if path.endswith((".js", ".css")) else "index.html"
    assert answer.content == resources.files("elserve.api").joinpath("console_assets", name).read_bytes()


def test_page_loads_nothing_from_elsewhere(server: Server) -> None:
    page = httpx.get(server.url + "/_elserve/console").text
    assert "http://" not in page and "https://" not in page
    script = httpx.get(server.url + "/_elserve/console/console.js").text
    assert "https://" not in script and "import " not in script.split("\n", 3)[-1].split("from", 1)[0]


def test_unknown_asset_is_elasticsearchs_no_handler(server: Server) -> None:
    # Only the three shipped files: no path reaches another file or route from here.
    for path in ("/_elserve/console/..%2F..%2Fapp.py", "/_elserve/console/%2E%2E", "/_elserve/console/index.html"):
        assert httpx.get(server.url + path).status_code == 400, path
    answer = httpx.get(server.url + "/_elserve/console/secrets.txt")
    assert answer.status_code == 400
    assert answer.json()["error"] == "no handler found for uri [/_elserve/console/secrets.txt] and method [GET]"


@pytest.fixture(scope="module")
def monitor_user(es: Elasticsearch) -> tuple[str, str]:
    es.security.put_user(username="console-watcher", password="watcher-pass", roles=["inference_user"])
    return "console-watcher", "watcher-pass"


def test_has_privileges_answers_for_the_caller(server: Server, monitor_user: tuple[str, str]) -> None:
    watcher = Elasticsearch(server.url, basic_auth=monitor_user, request_timeout=60)
    answer = watcher.security.has_privileges(
        cluster=[
            "monitor_inference",
            "manage_inference",
            "cluster:monitor/xpack/inference",
            "cluster:admin/xpack/inference/put",
        ],
        index=[{"names": ["docs"], "privileges": ["read"]}],
    )
    assert answer.body == {
        "username": "console-watcher",
        "has_all_requested": False,
        "cluster": {
            "monitor_inference": True,
            "manage_inference": False,
            "cluster:monitor/xpack/inference": True,
            "cluster:admin/xpack/inference/put": False,
        },
        "index": {"docs": {"read": False}},
        "application": {},
    }
    admin = make_client(server)
    everything = admin.security.has_privileges(
        cluster=["all", "manage_security"], index=[{"names": ["x"], "privileges": ["read"]}]
    )
    assert everything["has_all_requested"] is True


def test_has_privileges_validates_as_elasticsearch(server: Server) -> None:
    admin = make_client(server)
    with pytest.raises(ApiError) as empty:
        admin.security.has_privileges(cluster=[])
    assert empty.value.meta.status == 400
    assert empty.value.body["error"]["type"] == "action_request_validation_exception"
    assert empty.value.body["error"]["reason"] == "Validation Failed: 1: must specify at least one privilege;"
    with pytest.raises(ApiError) as unknown:
        admin.security.has_privileges(cluster=["fly"])
    assert unknown.value.meta.status == 400
    assert unknown.value.body["error"]["reason"].startswith("unknown cluster privilege [fly]")
    assert httpx.post(server.url + "/_security/user/_has_privileges", json={"cluster": ["all"]}).status_code == 401


def test_recent_errors_keep_server_side_failures_only(
    server: Server, es: Elasticsearch, elser_endpoint: str, monitor_user: tuple[str, str]
) -> None:
    # A 409 (a deployment an endpoint uses cannot be stopped) is kept; a client's own 404 is not.
    with pytest.raises(ApiError) as missing:
        es.inference.inference(inference_id="no-such-endpoint", input=["x"])
    assert missing.value.meta.status == 404
    with pytest.raises(ApiError) as conflict:
        es.ml.stop_trained_model_deployment(model_id=elser_endpoint)
    assert conflict.value.meta.status == 409
    errors = httpx.get(server.url + "/_elserve/errors", auth=monitor_user).json()["errors"]
    newest = errors[0]
    assert newest["status"] == 409 and newest["method"] == "POST"
    assert newest["path"] == f"/_ml/trained_models/{elser_endpoint}/deployment/_stop"
    assert newest["type"] == "status_exception"
    assert newest["reason"] == conflict.value.body["error"]["reason"]
    assert all(e["status"] not in (400, 401, 403, 404) for e in errors)
