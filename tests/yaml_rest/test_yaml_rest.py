"""Elastic's own YAML REST tests (vendored/, see its README) against a real elserve server.

Each test of each file is one pytest test: setup, the test, teardown, then the server is wiped of
what the test created. Tests that need what elserve does not serve are skipped with the reason
(`scope.py`); the counts are printed at the end of the run (conftest.py).
"""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from tests.yaml_rest.cluster import describe, wipe
from tests.yaml_rest.prerequisites import Cluster
from tests.yaml_rest.runner import Runner
from tests.yaml_rest.scope import why_skipped
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
