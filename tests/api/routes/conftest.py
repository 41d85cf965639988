"""The routes in-process: the real app (`create_app`, its lifespan and every part it wires) behind
Starlette's TestClient, no server process. For what a route parses and validates before any model
runs; what needs a deployment is tested end to end (tests/e2e)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from elserve.api.app import create_app
from elserve.settings import ServerSettings
from tests.support.server import PASSWORD


@pytest.fixture(scope="package")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A client as `elastic`; `auth=None` on a call sends no credentials. A 500 raises in the test."""
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("routes") / "data",
        elastic_password=PASSWORD,
        model_repository=os.environ["ELSERVE_MODEL_REPOSITORY"],  # nothing to download (tests/conftest.py)
        processors=2,
    )
    switch_interval = sys.getswitchinterval()
    try:
        with TestClient(create_app(settings)) as test_client:
            test_client.auth = ("elastic", PASSWORD)
            yield test_client
    finally:
        # The app's lifespan tunes the process for serving; this process goes on with other tests.
        sys.setswitchinterval(switch_interval)
        gc.unfreeze()
