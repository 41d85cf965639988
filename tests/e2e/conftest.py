"""End-to-end fixtures: a real server and the official `elasticsearch` client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from elserve.deployments.batch_hold import HOLD_FILE_ENV
from tests.support.clients import make_client, make_http
from tests.support.elser import elser_config
from tests.support.server import Server

SHARED_SERVER_ARGS = ["--processors", "64", "--ml-memory", "100%"]


@pytest.fixture(scope="session")
def server_hold_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, the session server's workers hold their batches (tests/support/hold.py)."""
    return tmp_path_factory.mktemp("hold") / "hold"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, server_hold_file: Path) -> Iterator[Server]:
    # The shared server holds many tests' deployments at once: room for them whatever the machine
    # (the capacity tests start their own server with the machine's limits or smaller ones).
    srv = Server(
        tmp_path_factory.mktemp("elserve") / "data",
        env={HOLD_FILE_ENV: str(server_hold_file)},
        args=SHARED_SERVER_ARGS,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def es(server: Server) -> Elasticsearch:
    return make_client(server)


@pytest.fixture(scope="session")
def elser_endpoint(es: Elasticsearch) -> str:
    """One ELSER endpoint, created once for the session (1 allocation, 1 thread)."""
    es.options(request_timeout=300).inference.put(
        task_type="sparse_embedding",
        inference_id="e2e-elser",
        inference_config=elser_config(),
        timeout="300s",
    )
    return "e2e-elser"


@pytest.fixture
def http(server: Server) -> Iterator:
    with make_http(server) as client:
        yield client
