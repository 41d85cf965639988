"""One elserve server for the YAML REST tests, and the count of their outcomes printed at the end."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from tests.e2e.conftest import SHARED_SERVER_ARGS
from tests.support.clients import make_client
from tests.support.server import Server
from tests.yaml_rest.cluster import TEST_PASSWORD, TEST_USER, create_test_user, warm_up

_RUN_MODULE = "tests/yaml_rest/test_yaml_rest.py::test_yaml_rest["


@pytest.fixture(scope="module")
def yaml_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("yaml-rest") / "data", args=SHARED_SERVER_ARGS).start() as srv:
        yield srv


@pytest.fixture(scope="module")
def yaml_client(yaml_server: Server) -> Elasticsearch:
    """The client the tests' calls go through, as `x_pack_rest_user` (Elasticsearch's test user)."""
    create_test_user(make_client(yaml_server))
    client = Elasticsearch(yaml_server.url, basic_auth=(TEST_USER, TEST_PASSWORD), request_timeout=300)
    warm_up(client)
    return client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    passed = failed = 0
    skipped: Counter[str] = Counter()
    for status in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(status, []):
            if not getattr(report, "nodeid", "").startswith(_RUN_MODULE):
                continue
            if status == "skipped":
                skipped[str(report.longrepr[2]).removeprefix("Skipped: ")] += 1
            elif report.when == "call" and status == "passed":
                passed += 1
            elif status == "failed":
                failed += 1
    if not (passed or failed or skipped):
        return
    terminalreporter.section("Elastic's YAML REST tests against elserve")
    terminalreporter.write_line(f"passed: {passed}, failed: {failed}, skipped: {sum(skipped.values())}")
    for reason, count in skipped.most_common():
        terminalreporter.write_line(f"  skipped {count:3d}: {reason}")
