"""`GET /_inference/_services[/{task_type}]` (api/routes/inference_services.py)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.errors import error_of


@pytest.mark.parametrize(
    "path", ["/_inference/_services", "/_inference/_services/sparse_embedding", "/_inference/_services/any"]
)
def test_the_services_and_their_settings(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    services = {s["service"]: s for s in r.json()}
    assert "sparse_embedding" in services["elasticsearch"]["task_types"]
    assert services["elasticsearch"]["configurations"]["num_allocations"]["updatable"] is True


def test_services_is_no_endpoint_id(client: TestClient) -> None:
    # Mounted before `/_inference/{id}`: `_services` never reaches the endpoint lookup.
    assert client.get("/_inference/_services").status_code == 200


def test_an_unknown_task_type_is_refused(client: TestClient) -> None:
    assert error_of(client.get("/_inference/_services/bogus")) == (400, "status_exception", "Unknown task_type [bogus]")
