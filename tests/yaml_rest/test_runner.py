"""The YAML runner's own rules, each as Elasticsearch's runner has it (no server needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.yaml_rest import assertions
from tests.yaml_rest.apis import UnknownApiError, build_request
from tests.yaml_rest.prerequisites import Cluster, clients_skip_reason, in_version_ranges, skip_reason
from tests.yaml_rest.runner import Response, Runner, warning_texts
from tests.yaml_rest.scope import why_skipped
from tests.yaml_rest.sources import FILES, VENDORED, local_path
from tests.yaml_rest.stash import Stash, evaluate, set_from
from tests.yaml_rest.suite import load_suite

ES_9 = Cluster((9, 5, 0))


# -- stash and paths -------------------------------------------------------------------------------


def test_paths_index_objects_and_lists_and_take_stashed_segments() -> None:
    stash = Stash()
    body = {"nodes": {"abc": {"name": "n", "roles": ["ml"]}}, "a.b": 1}
    set_from(body, "nodes._arbitrary_key_", "node_id", stash)
    assert stash.get("$node_id") == "abc"
    assert evaluate(body, "nodes.$node_id.roles.0", stash) == "ml"
    assert evaluate(body, "a\\.b", stash) == 1
    assert evaluate(body, "nodes.missing.name", stash) is None
    assert evaluate(body, "nodes.abc.roles.7", stash) is None


def test_stashed_values_replace_whole_values_embedded_text_and_keys() -> None:
    stash = Stash()
    stash.put("id", "m1")
    stash.put("n", 3)
    assert stash.replace("$id") == "m1"
    assert stash.replace("${n}") == 3
    assert stash.replace("model ${id} x${n}") == "model m1 x3"
    assert stash.replace({"$id": ["$n", {"k": "${id}"}]}) == {"m1": [3, {"k": "m1"}]}
    with pytest.raises(AssertionError, match="nothing stashed"):
        stash.get("$other")


# -- assertions ------------------------------------------------------------------------------------


def test_match_compares_numbers_by_value_and_everything_else_by_type() -> None:
    assertions.assert_match("f", 1.0, 1)
    assertions.assert_match("f", {"a": [1, "x"]}, {"a": [1.0, "x"]})
    for actual, expected in ((True, 1), ("0", 0), ([1], [1, 2]), ({"a": 1}, {"a": 1, "b": 2})):
        with pytest.raises(AssertionError):
            assertions.assert_match("f", actual, expected)


def test_match_regex_finds_with_whitespace_and_comments_ignored() -> None:
    assertions.assert_match("f", "status: started!", "/ started  # the state\n/")
    with pytest.raises(AssertionError, match="expected to match"):
        assertions.assert_match("f", "stopped", "/^started$/")
    with pytest.raises(AssertionError, match="expected to be a string"):
        assertions.assert_match("f", 3, "/3/")


@pytest.mark.parametrize("value", [True, 1, "x", [1], {"a": 1}, [], {}])
def test_is_true(value: object) -> None:
    assertions.assert_is_true("f", value)
    with pytest.raises(AssertionError):
        assertions.assert_is_false("f", value)


@pytest.mark.parametrize("value", [None, False, 0, "", "FALSE", "0"])
def test_is_false(value: object) -> None:
    assertions.assert_is_false("f", value)
    with pytest.raises(AssertionError):
        assertions.assert_is_true("f", value)


def test_length_and_order() -> None:
    assertions.assert_length("f", {"a": 1, "b": 2}, 2)
    assertions.assert_length("f", "abc", "3")
    assertions.assert_order("gt", "f", 2, 1)
    assertions.assert_order("lte", "f", 1.0, 1)
    with pytest.raises(AssertionError, match="not greater than"):
        assertions.assert_order("gt", "f", 0, 0)
    with pytest.raises(AssertionError, match="not comparable"):
        assertions.assert_order("gte", "f", "1", 0)


# -- do: requests, errors, warnings ----------------------------------------------------------------


def test_the_path_with_the_most_given_parts_is_chosen_and_the_rest_is_query() -> None:
    assert build_request("inference.get", {}) == ("GET", "/_inference", {})
    assert build_request("inference.put", {"inference_id": "e", "task_type": "sparse_embedding", "timeout": "1m"}) == (
        "PUT",
        "/_inference/sparse_embedding/e",
        {"timeout": "1m"},
    )
    assert build_request("ml.get_memory_stats", {"node_id": "ml:true"})[1] == "/_ml/memory/ml%3Atrue/_stats"
    with pytest.raises(UnknownApiError):
        build_request("xpack.usage", {})


def _runner() -> Runner:
    return Runner(client=None, default_headers={})


ERROR = {"error": {"root_cause": [{"type": "x", "reason": "No model [m]"}], "type": "x", "reason": "No model [m]"}}


def test_catch_checks_the_status_or_the_error_text() -> None:
    runner = _runner()
    runner._check_error("a", "missing", Response(404, ERROR, {}))
    runner._check_error("a", "request", Response(500, ERROR, {}))
    runner._check_error("a", r"/reason=No model \[m\]/", Response(400, ERROR, {}))
    with pytest.raises(AssertionError, match=r"expected \[404\]"):
        runner._check_error("a", "missing", Response(400, ERROR, {}))
    with pytest.raises(AssertionError, match=r"expected \[2xx\]"):
        runner._check_error("a", None, Response(404, ERROR, {}))
    with pytest.raises(AssertionError, match="regex"):
        runner._check_error("a", "/other/", Response(400, ERROR, {}))
    with pytest.raises(AssertionError, match=r"4xx\|5xx"):
        runner._check_error("a", "request", Response(409, ERROR, {}))


WARNING = (
    '299 Elasticsearch-9.5.0-abc "The [elser] service is deprecated", '
    '299 Elasticsearch-9.5.0-abc "say \\"hi\\"" "Sun, 06 Dec 2026 07:00:00 GMT"'
)


def test_warning_headers_are_read_as_elasticsearch_writes_them() -> None:
    assert warning_texts({"warning": WARNING}) == (["The [elser] service is deprecated", 'say "hi"'], [])
    assert warning_texts({"warning": "199 agent oops"}) == ([], ["199 agent oops"])


def test_strict_warnings_fail_on_the_unexpected_lenient_only_on_the_missing() -> None:
    response = Response(200, {}, {"warning": WARNING})
    strict = _runner()
    strict._check_warnings("a", {"warnings": ['say "hi"'], "allowed_warnings_regex": [".*deprecated"]}, response)
    with pytest.raises(AssertionError, match="unexpected warning"):
        strict._check_warnings("a", {"warnings": ['say "hi"']}, response)
    lenient = Runner(client=None, default_headers={}, strict_warnings=False)
    lenient._check_warnings("a", {}, response)
    with pytest.raises(AssertionError, match="did not get expected warning"):
        lenient._check_warnings("a", {"warnings": ["another"]}, response)


# -- prerequisites and scope -----------------------------------------------------------------------


def test_version_ranges() -> None:
    assert in_version_ranges((9, 5, 0), "all")
    assert in_version_ranges((9, 5, 0), " - 9.5.0")
    assert in_version_ranges((9, 5, 0), "8.0.0 - 8.1.0, 9.0.0 - ")
    assert not in_version_ranges((9, 5, 0), " - 8.99.99")


def test_prerequisites_as_elasticsearch_decides_them() -> None:
    assert skip_reason([{"skip": {"features": ["headers", "allowed_warnings"]}}], ES_9) is None
    assert "close_to" in skip_reason([{"skip": {"features": "close_to"}}], ES_9)
    assert skip_reason([{"requires": {"cluster_features": ["gte_v8.13.0"], "reason": "r"}}], ES_9) is None
    assert "does not publish" in skip_reason([{"requires": {"cluster_features": "x.y", "reason": "r"}}], ES_9)
    assert skip_reason([{"skip": {"version": " - 8.10.99", "reason": "old"}}], ES_9) is None
    assert "old" in skip_reason([{"skip": {"version": "9.0.0 - ", "reason": "old"}}], ES_9)
    assert skip_reason([{"skip": {"cluster_features": ["gte_v10.0.0"], "reason": "r"}}], ES_9) is None
    assert clients_skip_reason({"serverless": True, "stack": True}) is None
    assert "serverless-only" in clients_skip_reason({"serverless": True, "stack": False})


def test_models_elserve_refuses_are_skipped_unless_the_refusal_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(
        """---
"refused":
  - do:
      ml.put_trained_model:
        model_id: m
        body: { "model_type": "pytorch", "inference_config": { "ner": {} } }
---
"expected to fail":
  - do:
      catch: bad_request
      ml.put_trained_model:
        model_id: m
        body: { "model_type": "pytorch", "inference_config": { "ner": {} } }
---
"served":
  - do:
      ml.put_trained_model:
        model_id: m
        body: '{ "model_type": "pytorch", "inference_config": { "text_expansion": {} } }'
  - do:
      cat.ml_trained_models: {}
"""
    )
    suite = load_suite(path)
    reasons = [why_skipped("t.yml", suite, test, ES_9) for test in suite.tests]
    assert reasons[0] is not None and "[pytorch ner] model" in reasons[0]
    assert reasons[1] is None
    assert reasons[2] == "needs API [cat.ml_trained_models], which elserve does not serve"


def test_the_vendored_files_are_those_listed_with_their_sources() -> None:
    on_disk = set(VENDORED.rglob("*.yml"))
    listed = {local_path(source, path) for source, path, _ in FILES}
    assert on_disk == listed
    readme = (VENDORED / "README.md").read_text()
    for _source, path, commit in FILES:
        assert re.search(rf"{re.escape(path)}.*{commit}", readme), f"README.md does not list {path} at {commit}"
