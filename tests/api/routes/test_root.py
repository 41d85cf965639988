"""`GET /` and `HEAD /` (api/routes/root.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from elserve.version import ES_VERSION, TAGLINE
from tests.support.errors import error_of


def test_info_is_the_cluster_info_clients_read(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["x-elastic-product"] == "Elasticsearch"  # the official clients refuse a 2xx without it
    body = r.json()
    assert body["version"]["number"] == ES_VERSION and body["version"]["build_flavor"] == "default"
    assert body["tagline"] == TAGLINE
    assert body.keys() >= {"name", "cluster_name", "cluster_uuid"}


def test_head_answers_without_a_body(client: TestClient) -> None:
    r = client.head("/")
    assert (r.status_code, r.content) == (200, b"")


def test_pretty_indents_the_same_answer(client: TestClient) -> None:
    plain, pretty = client.get("/"), client.get("/", params={"pretty": ""})
    assert pretty.json() == plain.json()
    assert pretty.text.startswith('{\n  "name" : ')


def test_an_unknown_parameter_is_refused(client: TestClient) -> None:
    assert error_of(client.get("/", params={"bogus": "1"})) == (
        400,
        "illegal_argument_exception",
        "request [/] contains unrecognized parameter: [bogus]",
    )


def test_no_credentials_is_a_401_with_the_challenges(client: TestClient) -> None:
    r = client.get("/", auth=None)
    assert error_of(r) == (401, "security_exception", "missing authentication credentials for REST request [/]")
    assert r.headers.get_list("www-authenticate") == [
        'Basic realm="security", charset="UTF-8"',
        'Bearer realm="security"',
        "ApiKey",
    ]
