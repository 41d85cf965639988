"""Elastic's own YAML REST tests (vendored/, see its README) against a real elserve server.

Each test of each file is one pytest test: setup, the test, teardown, then the server is wiped of
what the test created. Tests that need what elserve does not serve are skipped with the reason
(`scope.py`); the counts are printed at the end of the run (conftest.py).
"""

from __future__ import annotations

import json

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from tests.yaml_rest.cluster import describe, wipe
from tests.yaml_rest.prerequisites import Cluster
from tests.yaml_rest.runner import Runner
from tests.yaml_rest.scope import do_steps, refused_model_kind, why_skipped
from tests.yaml_rest.sources import FILES, Source, local_path, short_name
from tests.yaml_rest.suite import Suite, YamlTest, load_suite


def _cases() -> list:
    cases = []
    for source, path, _commit in FILES:
        name = short_name(source, path)
        suite = load_suite(local_path(source, path))
        for test in suite.tests:
            cases.append(pytest.param(source, name, suite, test, id=f"{name}: {test.name}"))
    return cases


@pytest.fixture(scope="module")
def cluster(yaml_client: Elasticsearch) -> Cluster:
    return describe(yaml_client)


@pytest.mark.parametrize(("source", "name", "suite", "test"), _cases())
def test_yaml_rest(
    yaml_client: Elasticsearch, cluster: Cluster, source: Source, name: str, suite: Suite, test: YamlTest
) -> None:
    reason = why_skipped(name, suite, test, cluster)
    if reason:
        pytest.skip(reason)
    runner = Runner(yaml_client, {}, strict_warnings=source.strict_warnings)
    try:
        if suite.setup is not None:
            runner.run(suite.setup.steps)
        runner.run(test.section.steps)
    finally:
        try:
            if suite.teardown is not None:
                runner.run(suite.teardown.steps)
        finally:
            wipe(yaml_client)


def test_the_models_tests_are_skipped_for_are_refused(yaml_client: Elasticsearch) -> None:
    """The model rule of `scope.py` holds for this server: every model a test is skipped for is refused
    with elserve's reason (once elserve accepts one, its tests must run instead)."""
    refused: dict[str, object] = {}
    for source, path, _commit in FILES:
        suite = load_suite(local_path(source, path))
        for test in suite.tests:
            for api, spec in do_steps(suite.steps_of(test)):
                body = (spec[api] or {}).get("body") if api == "ml.put_trained_model" else None
                kind = refused_model_kind(body) if body is not None else None
                if kind is not None:
                    refused[kind] = json.loads(body) if isinstance(body, str) else body
    assert len(refused) >= 2
    for kind, body in refused.items():
        with pytest.raises(BadRequestError) as error:
            yaml_client.ml.put_trained_model(model_id="scope-check", body=body)
        assert "elserve serves only" in error.value.body["error"]["reason"], kind
    with pytest.raises(NotFoundError):  # nothing was stored
        yaml_client.ml.get_trained_models(model_id="scope-check")
