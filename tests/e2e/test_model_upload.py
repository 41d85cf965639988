"""Uploading a model as eland does (raw HTTP: configuration, base64 definition parts, vocabulary),
then serving it through an `elasticsearch`-service endpoint with the official client."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import Elasticsearch

from tests.support.errors import error_of
from tests.support.model_factory import build_torchscript_dir
from tests.support.server import Server
from tests.support.uploads import PARTS, definition_parts, put_part, reference_tokens, upload_model

MODEL_ID = "my-splade"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_torchscript_dir(tmp_path_factory.mktemp("upload") / "model")


def _fully_defined(http: httpx.Client, model_id: str) -> bool:
    r = http.get(f"/_ml/trained_models/{model_id}", params={"include": "definition_status"})
    assert r.status_code == 200, r.text
    return r.json()["trained_model_configs"][0]["fully_defined"]


def _check_memory_estimate(server: Server, new_pids: set[int], required: int) -> None:
    """The estimate made before deploying against the processes that then ran (the model's parent,
    its workers): their PSS summed, within a ratio band; and the stats' figure is that estimate for
    the parent, one allocation and the query lane."""
    from elserve.deployments.memory import process_memory
    from elserve.runtime.memory import estimate_memory

    installed = [p for p in (server.data_dir / "models").iterdir() if (p / "model.pt").exists()]
    assert len(installed) == 1
    estimated = estimate_memory(installed[0], max_batch_tokens=4096)
    assert required == estimated.parent_bytes + 2 * estimated.allocation_bytes
    from elserve.deployments.parent_process import PARENT_NAME
    from elserve.deployments.worker import WORKER_NAME

    # The model's processes, not the fork server (started by this first deployment too).
    ours = [pid for pid in new_pids if _name(pid) in (PARENT_NAME, WORKER_NAME)]
    workers = len(ours) - 1  # the allocation, and the query lane once it has started
    assert workers in (1, 2), ours
    expected = estimated.parent_bytes + workers * estimated.allocation_bytes
    measured = sum(m.pss_bytes for m in map(process_memory, ours) if m is not None)
    print(f"memory: estimated {expected / 2**20:.0f} MiB, measured PSS {measured / 2**20:.0f} MiB")
    assert 0.6 <= expected / measured <= 1.6, (expected, measured)


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_upload_then_infer_through_the_client(
    http: httpx.Client, es: Elasticsearch, model_dir: Path, server: Server
) -> None:
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    assert http.put(f"/_ml/trained_models/{MODEL_ID}", json=config).status_code == 200
    assert not _fully_defined(http, MODEL_ID)
    # Not deployable before its definition is there.
    r = http.post(f"/_ml/trained_models/{MODEL_ID}/deployment/_start")
    assert (
        r.status_code == 404 and r.json()["error"]["reason"] == f"Could not find trained model definition [{MODEL_ID}]"
    )
    total = (model_dir / "model.pt").stat().st_size
    parts = definition_parts(model_dir)
    for i in reversed(range(PARTS)):  # any order
        assert put_part(http, MODEL_ID, i, parts[i], total).status_code == 200
    r = put_part(http, MODEL_ID, 1, parts[1], total)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "resource_already_exists_exception"
    assert r.json()["error"]["reason"] == f"Trained machine learning model chunked doc [{MODEL_ID}][1] already exists"
    assert not _fully_defined(http, MODEL_ID)
    vocabulary = json.loads((model_dir / "vocab.json").read_text())
    assert http.put(f"/_ml/trained_models/{MODEL_ID}/vocabulary", json=vocabulary).status_code == 200
    assert _fully_defined(http, MODEL_ID)
    listed = http.get("/_ml/trained_models", params={"include": "definition_status"}).json()["trained_model_configs"]
    assert [c["fully_defined"] for c in listed if c["model_id"] == MODEL_ID] == [True]
    stats = http.get(f"/_ml/trained_models/{MODEL_ID}/_stats").json()["trained_model_stats"][0]
    sizes = stats["model_size_stats"]
    assert sizes["model_size_bytes"] >= total  # model.pt plus the vocabulary and configuration
    assert sizes["required_native_memory_bytes"] > sizes["model_size_bytes"]

    before = set(server.worker_pids())
    es.options(request_timeout=300).inference.put(
        task_type="sparse_embedding",
        inference_id="upload-e2e",
        inference_config={
            "service": "elasticsearch",
            "service_settings": {"model_id": MODEL_ID, "num_allocations": 1, "num_threads": 1},
        },
        timeout="300s",
    )
    texts = ["hello world", "The quick brown fox, e.g. w1 w2 ... jumps!"]
    answer = es.inference.inference(inference_id="upload-e2e", input=texts)
    _check_memory_estimate(server, set(server.worker_pids()) - before, sizes["required_native_memory_bytes"])
    for text, result in zip(texts, answer["sparse_embedding"], strict=True):
        got, want = result["embedding"], reference_tokens(model_dir, text)
        assert set(got) == set(want), text
        assert max(abs(got[t] - want[t]) for t in want) <= 1e-4

    # In use: refused; with the endpoint gone (and its deployment), deleted.
    r = http.delete(f"/_ml/trained_models/{MODEL_ID}")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["reason"] == (
        f"Cannot delete model [{MODEL_ID}] as it is currently deployed; use force to delete the model"
    )
    es.inference.delete(inference_id="upload-e2e")
    assert http.delete(f"/_ml/trained_models/{MODEL_ID}").json() == {"acknowledged": True}
    assert http.get(f"/_ml/trained_models/{MODEL_ID}").status_code == 404
    assert http.delete(f"/_ml/trained_models/{MODEL_ID}").status_code == 404


def test_the_same_model_uploaded_twice_is_one_copy(http: httpx.Client, model_dir: Path, server: Server) -> None:
    models = server.data_dir / "models"

    def installed() -> set[str]:
        return {p.name for p in models.iterdir() if not p.name.startswith(".")}

    before = installed()
    for model_id in ("twin-a", "twin-b"):
        upload_model(http, model_id, model_dir)
        assert _fully_defined(http, model_id)
    assert len(installed() - before) == 1  # content-addressed: one directory for both ids
    assert not any((server.data_dir / "model-uploads").glob("twin-*"))  # no staging left
    assert http.delete("/_ml/trained_models/twin-a").status_code == 200
    assert len(installed() - before) == 1  # twin-b still uses it
    assert http.delete("/_ml/trained_models/twin-b").status_code == 200
    assert installed() == before


def test_eland_calls_through_the_client(es: Elasticsearch, model_dir: Path) -> None:
    """The calls eland's `PyTorchModel.import_model`, `list` and `delete` make, through the official client."""
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    es.ml.put_trained_model(model_id="eland-style", **config)
    data = (model_dir / "model.pt").read_bytes()
    chunk = 64 * 1024
    total_parts = -(-len(data) // chunk)
    for i in range(total_parts):
        es.ml.put_trained_model_definition_part(
            model_id="eland-style",
            part=i,
            total_definition_length=len(data),
            total_parts=total_parts,
            definition=base64.b64encode(data[i * chunk : (i + 1) * chunk]).decode(),
        )
    es.perform_request(
        method="PUT",
        path="/_ml/trained_models/eland-style/vocabulary",
        headers={"accept": "application/json", "content-type": "application/json"},
        body=json.loads((model_dir / "vocab.json").read_text()),
    )
    listed = es.ml.get_trained_models(model_id="*", allow_no_match=True, include="definition_status")
    mine = [m for m in listed["trained_model_configs"] if m["model_id"] == "eland-style"]
    assert [(m["model_type"], m["fully_defined"]) for m in mine] == [("pytorch", True)]
    assert es.ml.delete_trained_model(model_id="eland-style")["acknowledged"] is True
    assert es.options(ignore_status=404).ml.delete_trained_model(model_id="eland-style").meta.status == 404


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"definition": "AAAA", "total_definition_length": 0, "total_parts": 0},
            (
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [total_parts] must be greater than 0;2: [total_definition_length] must be "
                "greater than 0;3: [part] must be less than total_parts;",
            ),
        ),
        (
            {"total_definition_length": 3, "total_parts": 1},
            (400, "illegal_argument_exception", "[definition] must not be null."),
        ),
        (
            {"definition": "not base64!", "total_definition_length": 3, "total_parts": 1},
            (400, "x_content_parse_exception", "[put_trained_model_part_action] failed to parse field [definition]"),
        ),
        (
            {"definition": "AAAA", "total_definition_length": 3, "total_parts": 1, "extra": 1},
            (400, "x_content_parse_exception", "[put_trained_model_part_action] unknown field [extra]"),
        ),
        (
            {"definition": "AAAA", "total_definition_length": 3, "total_parts": 1},
            (404, "resource_not_found_exception", "Could not find trained model [no-such-upload]"),
        ),
    ],
)
def test_definition_part_errors(http: httpx.Client, body: dict[str, Any], expected: tuple[int, str, str]) -> None:
    assert error_of(http.put("/_ml/trained_models/no-such-upload/definition/0", json=body)) == expected


def test_configuration_and_vocabulary_errors(http: httpx.Client, model_dir: Path) -> None:
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    assert error_of(http.put("/_ml/trained_models/Bad-Id", json=config)) == (
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: Invalid model_id; 'Bad-Id' can contain lowercase alphanumeric (a-z and 0-9), "
        "hyphens or underscores; must start and end with alphanumeric;",
    )
    embedding = {**config, "inference_config": {"text_embedding": {}}}
    status, kind, reason = error_of(http.put("/_ml/trained_models/an-embedder", json=embedding))
    assert (status, kind) == (400, "status_exception") and "only ['text_expansion', 'pass_through']" in reason
    assert error_of(http.put("/_ml/trained_models/no-type", json={"inference_config": config["inference_config"]})) == (
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: [model_type] must be set if [definition] is not defined.;",
    )
    assert http.put("/_ml/trained_models/err-model", json=config).status_code == 200
    assert error_of(http.put("/_ml/trained_models/err-model", json=config)) == (
        400,
        "resource_already_exists_exception",
        "Trained machine learning model [err-model] already exists",
    )
    assert error_of(http.put("/_ml/trained_models/err-model/vocabulary", json={"vocabulary": []})) == (
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: [vocabulary] must not be empty;",
    )
    assert error_of(http.put("/_ml/trained_models/nobody/vocabulary", json={"vocabulary": ["a"]})) == (
        404,
        "resource_not_found_exception",
        "Could not find trained model [nobody]",
    )
    # A part whose totals disagree with the first part's.
    assert put_part(http, "err-model", 0, b"abc", 6, 2).status_code == 200
    status, kind, reason = error_of(put_part(http, "err-model", 1, b"abc", 7, 2))
    assert (status, kind) == (400, "status_exception") and "earlier parts gave [6] and [2]" in reason
    assert http.delete("/_ml/trained_models/err-model").status_code == 200
    assert error_of(http.delete("/_ml/trained_models/.elser_model_2"))[0] == 400


def test_an_unknown_top_level_field_is_refused_as_elasticsearch_refuses_it(http: httpx.Client) -> None:
    # `TrainedModelConfig.STRICT_PARSER`: the field name's location, the parser's name.
    r = http.put(
        "/_ml/trained_models/unknown-field",
        content=b'{"foo": 1, "model_type": "pytorch", "inference_config": {"text_expansion": {}}}',
        headers={"content-type": "application/json"},
    )
    assert error_of(r) == (400, "x_content_parse_exception", "[1:2] [trained_model_config] unknown field [foo]")
    assert http.get("/_ml/trained_models/unknown-field").status_code == 404


def test_a_model_that_cannot_run_is_refused_when_complete(http: httpx.Client, model_dir: Path, tmp_path: Path) -> None:
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    assert http.put("/_ml/trained_models/bad-vocab", json=config).status_code == 200
    data = (model_dir / "model.pt").read_bytes()
    assert put_part(http, "bad-vocab", 0, data, len(data), 1).status_code == 200
    vocabulary = json.loads((model_dir / "vocab.json").read_text())["vocabulary"] + ["extra1", "extra2"]
    status, kind, reason = error_of(
        http.put("/_ml/trained_models/bad-vocab/vocabulary", json={"vocabulary": vocabulary})
    )
    assert (status, kind) == (400, "status_exception")
    assert reason == (
        "model [bad-vocab] cannot be served: the vocabulary has [346] tokens but the model's output only [344] "
        "entries; delete the model and upload it again"
    )
    assert not _fully_defined(http, "bad-vocab")
    assert http.delete("/_ml/trained_models/bad-vocab").status_code == 200


def test_upload_routes_need_manage_ml(http: httpx.Client, server: Server) -> None:
    http.put("/_security/role/upload_monitor", json={"cluster": ["monitor_ml"]}).raise_for_status()
    http.put(
        "/_security/user/upload_mon", json={"password": "upload-password", "roles": ["upload_monitor"]}
    ).raise_for_status()
    with httpx.Client(base_url=server.url, auth=("upload_mon", "upload-password"), timeout=60) as monitor:
        cases = [
            ("PUT", "/_ml/trained_models/x/definition/0", "cluster:admin/xpack/ml/trained_models/part/put"),
            ("PUT", "/_ml/trained_models/x/vocabulary", "cluster:admin/xpack/ml/trained_models/vocabulary/put"),
            ("DELETE", "/_ml/trained_models/x", "cluster:admin/xpack/ml/inference/delete"),
        ]
        for method, path, action in cases:
            r = monitor.request(method, path, json={"vocabulary": ["a"]} if method == "PUT" else None)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["reason"].startswith(f"action [{action}] is unauthorized for user [upload_mon]")
            assert r.json()["error"]["reason"].endswith("granted by the cluster privileges [manage_ml,manage,all]")
