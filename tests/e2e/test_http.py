"""HTTP conventions, through raw requests: headers, media types, errors, pretty, filter_path, auth."""

from __future__ import annotations

import httpx

from tests.support.server import PASSWORD, Server

VENDOR9 = "application/vnd.elasticsearch+json; compatible-with=9"


def test_root_answers_cluster_info(http: httpx.Client) -> None:
    r = http.get("/")
    assert r.status_code == 200
    assert r.headers["x-elastic-product"] == "Elasticsearch"
    body = r.json()
    assert body["tagline"] == "You Know, for Search"
    assert body["version"]["number"].startswith("9.")
    assert body["version"]["build_flavor"] == "default"


def test_head_root(http: httpx.Client) -> None:
    r = http.head("/")
    assert r.status_code == 200
    assert r.headers["x-elastic-product"] == "Elasticsearch"


def test_vendor_media_type_is_accepted_and_answered(http: httpx.Client) -> None:
    for version in ("8", "9"):
        media = f"application/vnd.elasticsearch+json; compatible-with={version}"
        r = http.get("/_inference", headers={"Accept": media, "Content-Type": media})
        assert r.status_code == 200
        assert r.headers["content-type"] == f"application/vnd.elasticsearch+json;compatible-with={version}"


def test_unsupported_compatible_version(http: httpx.Client) -> None:
    r = http.get("/_inference", headers={"Accept": "application/vnd.elasticsearch+json; compatible-with=7"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "status_exception"
    assert "Accept version must be either version 9 or 8, but found 7" in r.json()["error"]["reason"]


def test_mismatched_compatible_versions_with_a_body(http: httpx.Client) -> None:
    r = http.post(
        "/_inference/sparse_embedding/x",
        content=b'{"input": "a"}',
        headers={"Accept": VENDOR9, "Content-Type": "application/vnd.elasticsearch+json; compatible-with=8"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["reason"].startswith("A compatible version is required on both Content-Type and Accept")


def test_missing_credentials_gets_401_with_challenge(server: Server) -> None:
    r = httpx.get(f"{server.url}/_inference?pretty")
    assert r.status_code == 401
    assert r.headers["x-elastic-product"] == "Elasticsearch"
    assert 'Basic realm="security", charset="UTF-8"' in r.headers.get_list("www-authenticate")
    error = r.json()["error"]
    assert error["type"] == "security_exception"
    assert error["reason"] == "missing authentication credentials for REST request [/_inference?pretty]"
    assert error["root_cause"][0]["type"] == "security_exception"
    assert r.json()["status"] == 401


def test_wrong_password_gets_401(server: Server) -> None:
    r = httpx.get(f"{server.url}/_inference", auth=("elastic", PASSWORD + "x"))
    assert r.status_code == 401
    assert r.json()["error"]["reason"] == "unable to authenticate user [elastic] for REST request [/_inference]"
    r = httpx.get(f"{server.url}/_inference", auth=("nobody", PASSWORD))
    assert r.status_code == 401


def test_malformed_json_is_a_parse_error(http: httpx.Client) -> None:
    r = http.put(
        "/_inference/sparse_embedding/bad-json", content=b'{"service": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "parse_exception"
    assert body["error"]["root_cause"][0]["type"] == "parse_exception"
    assert body["status"] == 400


def test_missing_body(http: httpx.Client) -> None:
    r = http.put("/_inference/sparse_embedding/no-body")
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "request body is required"


def test_unknown_route(http: httpx.Client) -> None:
    r = http.get("/_nope/at/all")
    assert r.status_code == 400
    assert r.json() == {"error": "no handler found for uri [/_nope/at/all] and method [GET]", "status": 400}


def test_wrong_method(http: httpx.Client) -> None:
    r = http.patch("/_inference/some-id")
    assert r.status_code == 405
    body = r.json()
    assert body["status"] == 405
    assert body["error"].startswith(
        "Incorrect HTTP method for uri [/_inference/some-id] and method [PATCH], allowed: ["
    )
    for method in ("DELETE", "GET", "POST", "PUT"):
        assert method in body["error"]


def test_unrecognized_parameter(http: httpx.Client) -> None:
    r = http.get("/_inference", params={"bogus": "1"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "illegal_argument_exception"
    assert r.json()["error"]["reason"] == "request [/_inference] contains unrecognized parameter: [bogus]"


def test_pretty(http: httpx.Client) -> None:
    r = http.get("/", params={"pretty": "true"})
    assert r.text.startswith('{\n  "name" : ')
    assert r.text.endswith("}\n")


def test_filter_path(http: httpx.Client) -> None:
    r = http.get("/", params={"filter_path": "version.number,tagline"})
    assert set(r.json()) == {"version", "tagline"}
    assert list(r.json()["version"]) == ["number"]
    r = http.get("/", params={"filter_path": "-version"})
    assert "version" not in r.json() and "tagline" in r.json()


def test_error_trace(http: httpx.Client) -> None:
    r = http.get("/_inference/does-not-exist", params={"error_trace": "true"})
    assert r.status_code == 404
    assert "stack_trace" in r.json()["error"]
    r = http.get("/_inference/does-not-exist")
    assert "stack_trace" not in r.json()["error"]


def test_wrong_type_is_400_not_500(http: httpx.Client) -> None:
    r = http.put(
        "/_inference/sparse_embedding/typed",
        json={
            "service": "elasticsearch",
            "service_settings": {"model_id": ".elser_model_2", "num_threads": "abc", "num_allocations": 1},
        },
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "validation_exception"
