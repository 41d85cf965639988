"""`POST /_ml/trained_models/{id}/_infer` and the deprecated `.../deployment/_infer` (issue 25, part 4),
through the official client where it has the call, raw HTTP for the error answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import ApiError, Elasticsearch

from tests.support.errors import error_of
from tests.support.hold import held
from tests.support.model_factory import build_torchscript_dir
from tests.support.uploads import reference_tokens, upload_model

DEPRECATION = (
    '"[POST /_ml/trained_models/{model_id}/deployment/_infer] is deprecated! '
    'Use [POST /_ml/trained_models/{model_id}/_infer] instead."'
)
INFER_PARSER = "cluster:internal/xpack/ml/inference/infer"


def _close(got: dict[str, float], want: dict[str, float]) -> None:
    """Within 1e-4 (relative to weights over 1), a token absent on one side weighing no more than that on
    the other: two deployments may run other (equally exact) kernels."""
    for token in set(got) | set(want):
        a, b = got.get(token, 0.0), want.get(token, 0.0)
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b)), (token, a, b)


def test_infer_by_deployment_and_by_model_id_through_the_client(es: Elasticsearch, elser_endpoint: str) -> None:
    texts = ["The quick brown fox jumps over the lazy dog", "élan vital ☕ 東京", "word " * 600]
    docs = [{"text_field": t} for t in texts]
    by_deployment = es.ml.infer_trained_model(model_id=elser_endpoint, docs=docs)
    by_model = es.ml.infer_trained_model(model_id=".elser_model_2", docs=docs, timeout="30s")
    reference = es.inference.sparse_embedding(inference_id=elser_endpoint, input=texts)["sparse_embedding"]
    assert list(by_deployment.body) == ["inference_results"]
    for answer in (by_deployment, by_model):
        results = answer["inference_results"]
        assert len(results) == 3
        for result, expected in zip(results, reference, strict=True):
            # `is_truncated` only when true, as NlpInferenceResults prints it.
            assert set(result) == (
                {"predicted_value", "is_truncated"} if expected["is_truncated"] else {"predicted_value"}
            )
            _close(result["predicted_value"], expected["embedding"])
            weights = list(result["predicted_value"].values())
            assert weights == sorted(weights, reverse=True)
    assert by_deployment["inference_results"][2]["is_truncated"] is True


def test_inference_config_update(http: httpx.Client, elser_endpoint: str) -> None:
    long_doc = {"text_field": "word " * 600}
    url = f"/_ml/trained_models/{elser_endpoint}/_infer"

    renamed = http.post(
        url,
        json={"docs": [{"text_field": "hello"}], "inference_config": {"text_expansion": {"results_field": "tokens"}}},
    )
    assert renamed.status_code == 200, renamed.text
    assert list(renamed.json()["inference_results"][0]) == ["tokens"]

    first = {"text_expansion": {"tokenization": {"bert": {"truncate": "first"}}}}
    r = http.post(url, json={"docs": [long_doc], "inference_config": first})
    assert r.status_code == 200 and r.json()["inference_results"][0]["is_truncated"] is True

    none = {"text_expansion": {"tokenization": {"bert": {"truncate": "NONE"}}}}  # Truncate.fromString upper-cases
    assert error_of(http.post(url, json={"docs": [long_doc], "inference_config": none})) == (
        400,
        "status_exception",
        "Input too large. The tokenized input length [602] exceeds the maximum sequence length [512]",
    )
    assert http.post(url, json={"docs": [{"text_field": "short"}], "inference_config": none}).status_code == 200

    # A span only goes with `truncate: none`; the model's own truncation is `first`.
    span = {"text_expansion": {"tokenization": {"bert": {"span": 128}}}}
    r = http.post(url, json={"docs": [{"text_field": "a"}], "inference_config": span})
    assert error_of(r) == (400, "status_exception", "[span] must not be provided when [truncate] is [first]")
    assert r.json()["error"]["caused_by"]["type"] == "illegal_argument_exception"
    both = {"text_expansion": {"tokenization": {"bert": {"truncate": "second", "span": 8}}}}
    assert error_of(http.post(url, json={"docs": [{"text_field": "a"}], "inference_config": both}))[2] == (
        "[span] must not be provided when [truncate] is [second]"
    )
    other = {"text_expansion": {"tokenization": {"roberta": {"truncate": "first"}}}}
    assert error_of(http.post(url, json={"docs": [{"text_field": "a"}], "inference_config": other})) == (
        400,
        "status_exception",
        "Tokenization config of type [bert] can not be updated with a request of type [roberta]",
    )
    assert error_of(http.post(url, json={"docs": [{"text_field": "a"}], "inference_config": {"ner": {}}})) == (
        403,
        "status_exception",
        "Trained model [.elser_model_2] is configured for task [text_expansion] but called with task [ner]",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"docs": []},
            (400, "action_request_validation_exception", "Validation Failed: 1: at least one document is required ;"),
        ),
        ({}, (400, "illegal_argument_exception", "[docs] must not be null.")),
        (
            {"docs": [{"other": "x"}]},
            (400, "status_exception", "Input field [text_field] does not exist in the source document"),
        ),
        (
            {"docs": [{"text_field": "ok"}, {"text_field": 7}]},
            (400, "status_exception", "Input value [7] for field [text_field] must be a string"),
        ),
        (
            {"docs": [{"text_field": ["a", 1.5]}]},
            (400, "status_exception", "Input value [[a, 1.5]] for field [text_field] must be a string"),
        ),
        (
            {"docs": [{"text_field": "a"}], "doc": 1},
            (400, "x_content_parse_exception", f"[1:30] [{INFER_PARSER}] unknown field [doc] did you mean [docs]?"),
        ),
        (
            {"docs": "a"},
            (
                400,
                "x_content_parse_exception",
                f"[1:9] [{INFER_PARSER}] docs doesn't support values of type: VALUE_STRING",
            ),
        ),
        ({"docs": ["a"]}, (400, "x_content_parse_exception", f"[1:9] [{INFER_PARSER}] failed to parse field [docs]")),
        (
            {"docs": [{"text_field": "a"}], "timeout": "soon"},
            (400, "x_content_parse_exception", f"[1:40] [{INFER_PARSER}] failed to parse field [timeout]"),
        ),
        (
            {"docs": [{"text_field": "a"}], "inference_config": {"nope": {}}},
            (400, "x_content_parse_exception", f"[1:49] [{INFER_PARSER}] failed to parse field [inference_config]"),
        ),
        (
            {
                "docs": [{"text_field": "a"}],
                "inference_config": {"text_expansion": {"tokenization": {"bert": {"truncate": "last"}}}},
            },
            (400, "x_content_parse_exception", f"[1:49] [{INFER_PARSER}] failed to parse field [inference_config]"),
        ),
    ],
)
def test_request_errors(
    http: httpx.Client, elser_endpoint: str, body: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    content = json.dumps(body, separators=(",", ":"))
    r = http.post(
        f"/_ml/trained_models/{elser_endpoint}/_infer", content=content, headers={"Content-Type": "application/json"}
    )
    assert error_of(r) == expected


def test_docs_as_a_single_object(http: httpx.Client, elser_endpoint: str) -> None:
    # The input field is read as XContentMapValues reads a path: a key holding dots works too.
    nested = http.post(f"/_ml/trained_models/{elser_endpoint}/_infer", json={"docs": {"text_field": "hello"}})
    assert nested.status_code == 200 and len(nested.json()["inference_results"]) == 1


def test_no_body_unknown_parameter_and_bad_timeout(http: httpx.Client, elser_endpoint: str) -> None:
    url = f"/_ml/trained_models/{elser_endpoint}/_infer"
    assert error_of(http.post(url)) == (400, "status_exception", "requires body")
    assert error_of(http.post(url, params={"bogus": "1"}, json={"docs": []}))[1] == "illegal_argument_exception"
    assert error_of(http.post(url, params={"timeout": "soon"}, json={"docs": [{"text_field": "a"}]})) == (
        400,
        "parse_exception",
        "failed to parse setting [timeout] with value [soon] as a time value: unit is missing or unrecognized",
    )


def test_timeout_is_a_408(http: httpx.Client, elser_endpoint: str, server_hold_file: Path) -> None:
    with held(server_hold_file):
        r = http.post(
            f"/_ml/trained_models/{elser_endpoint}/_infer",
            params={"timeout": "1s"},
            json={"docs": [{"text_field": "held"}]},
        )
    assert error_of(r) == (408, "status_exception", "timeout [1s] waiting for inference result")


def test_nothing_serves_the_id(http: httpx.Client) -> None:
    assert error_of(http.post("/_ml/trained_models/no-such-model/_infer", json={"docs": [{"text_field": "a"}]})) == (
        404,
        "resource_not_found_exception",
        "Could not find trained model [no-such-model]",
    )
    config = {
        "model_type": "pytorch",
        "inference_config": {"text_expansion": {}},
        "input": {"field_names": ["text_field"]},
    }
    assert http.put("/_ml/trained_models/infer-undeployed", json=config).status_code == 200
    try:
        assert error_of(
            http.post("/_ml/trained_models/infer-undeployed/_infer", json={"docs": [{"text_field": "a"}]})
        ) == (
            409,
            "status_exception",
            "Model [infer-undeployed] must be deployed to use. Please deploy with the start trained model deployment API.",  # noqa: E501  # Elasticsearch's message, whole so that it greps
        )
    finally:
        http.delete("/_ml/trained_models/infer-undeployed")


def test_deprecated_deployment_infer(http: httpx.Client, elser_endpoint: str) -> None:
    url = f"/_ml/trained_models/{elser_endpoint}/deployment/_infer"
    r = http.post(url, json={"docs": [{"text_field": "hello world"}]})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"predicted_value"}  # the one document's result, at the top level
    expected = http.post(f"/_ml/trained_models/{elser_endpoint}/_infer", json={"docs": [{"text_field": "hello world"}]})
    _close(r.json()["predicted_value"], expected.json()["inference_results"][0]["predicted_value"])
    assert [w.endswith(DEPRECATION) for w in r.headers.get_list("warning")] == [True]
    assert "warning" not in expected.headers
    # Every answer carries the warning, errors included.
    r = http.post(url, json={"docs": [{"text_field": "a"}, {"text_field": "b"}]})
    assert error_of(r) == (400, "validation_exception", "Validation Failed: 1: multiple documents are not supported;")
    assert r.headers.get_list("warning")[0].endswith(DEPRECATION)
    r = http.post(url, json={"docs": []})
    assert error_of(r)[2] == "Validation Failed: 1: at least one document is required ;"
    assert r.headers.get_list("warning")[0].endswith(DEPRECATION)


def test_privileges(http: httpx.Client, server) -> None:
    http.put("/_security/role/infer_monitor", json={"cluster": ["monitor_ml"]}).raise_for_status()
    http.put("/_security/role/infer_inference", json={"cluster": ["monitor_inference"]}).raise_for_status()
    for user, role in (("infer_mon", "infer_monitor"), ("infer_inf", "infer_inference")):
        http.put(f"/_security/user/{user}", json={"password": "infer-password", "roles": [role]}).raise_for_status()
    body = {"docs": [{"text_field": "a"}]}
    with httpx.Client(base_url=server.url, auth=("infer_mon", "infer-password"), timeout=120) as monitor:
        # monitor_ml grants `cluster:monitor/xpack/ml/inference/infer`: past authorization, to the lookup.
        assert monitor.post("/_ml/trained_models/no-such-model/_infer", json=body).status_code == 404
    with httpx.Client(base_url=server.url, auth=("infer_inf", "infer-password"), timeout=120) as inference:
        r = inference.post("/_ml/trained_models/no-such-model/_infer", json=body)
        assert r.status_code == 403
        assert r.json()["error"]["reason"].startswith(
            "action [cluster:monitor/xpack/ml/inference/infer] is unauthorized for user [infer_inf]"
        )


@pytest.fixture(scope="module")
def custom_input_model(tmp_path_factory: pytest.TempPathFactory, http: httpx.Client) -> Path:
    """The small uploaded model, its configuration naming another input field and results field."""
    model_dir = build_torchscript_dir(tmp_path_factory.mktemp("infer-upload") / "model")
    config_path = model_dir / "trained_model_config.json"
    config = json.loads(config_path.read_text())
    config["input"] = {"field_names": ["content.body"]}
    config["inference_config"]["text_expansion"]["results_field"] = "tokens"
    config_path.write_text(json.dumps(config))
    upload_model(http, "infer-custom-input", model_dir)
    return model_dir


@pytest.fixture(scope="module")
def http(server) -> Any:  # module-scoped for the module fixture above
    from tests.support.server import PASSWORD

    with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as client:
        yield client


def test_the_models_own_input_field(es: Elasticsearch, http: httpx.Client, custom_input_model: Path) -> None:
    es.options(request_timeout=300).ml.start_trained_model_deployment(
        model_id="infer-custom-input", wait_for="started", timeout="300s"
    )
    try:
        texts = ["hello world", "The quick brown fox, e.g. w1 w2 ... jumps!"]
        # `content.body`: a path into the document, or a key holding the dot.
        docs = [{"content": {"body": texts[0]}}, {"content.body": texts[1]}]
        answer = es.ml.infer_trained_model(model_id="infer-custom-input", docs=docs)
        for text, result in zip(texts, answer["inference_results"], strict=True):
            assert list(result) == ["tokens"]
            _close(result["tokens"], reference_tokens(custom_input_model, text))
        with pytest.raises(ApiError) as missing:
            es.ml.infer_trained_model(model_id="infer-custom-input", docs=[{"text_field": "a"}])
        assert missing.value.meta.status == 400
        assert missing.value.message == "status_exception"
        assert (
            missing.value.body["error"]["reason"] == "Input field [content.body] does not exist in the source document"
        )
    finally:
        es.ml.stop_trained_model_deployment(model_id="infer-custom-input", force=True)
        http.delete("/_ml/trained_models/infer-custom-input")
