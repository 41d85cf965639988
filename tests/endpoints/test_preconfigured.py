"""`.elser-2-elasticsearch`: its shape, and that it cannot be deleted or updated."""

from __future__ import annotations

import pytest

from elserve.endpoints.ids import RESERVED_INFERENCE_IDS
from elserve.endpoints.preconfigured import (
    check_deletable,
    check_updatable,
    default_elser_endpoint,
    is_preconfigured,
    preconfigured_endpoints,
)
from elserve.models.catalogue import platform_default_elser_model
from tests.support.errors import expect_error


def test_default_elser_shape() -> None:
    endpoint = default_elser_endpoint(".elser_model_2_linux-x86_64")
    assert endpoint.to_dict() == {
        "inference_id": ".elser-2-elasticsearch",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {
            "num_threads": 1,
            "model_id": ".elser_model_2_linux-x86_64",
            "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32},
        },
        "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
    }
    assert list(endpoint.to_dict()["service_settings"]) == ["num_threads", "model_id", "adaptive_allocations"]
    assert endpoint.deployment_id == ".elser-2-elasticsearch"


def test_defaults_follow_platform_and_cluster_settings() -> None:
    assert default_elser_endpoint().model_id == platform_default_elser_model()
    adaptive = default_elser_endpoint(".elser_model_2", 1, 4).service_settings.adaptive_allocations
    assert adaptive is not None and adaptive.to_dict() == {
        "enabled": True,
        "min_number_of_allocations": 1,
        "max_number_of_allocations": 4,
    }


def test_listed_endpoints() -> None:
    assert [e.inference_id for e in preconfigured_endpoints(".elser_model_2")] == [".elser-2-elasticsearch"]


@pytest.mark.parametrize("inference_id", sorted(RESERVED_INFERENCE_IDS))
def test_reserved_endpoints_cannot_be_deleted(inference_id: str) -> None:
    assert is_preconfigured(inference_id)
    expect_error(
        lambda: check_deletable(inference_id),
        "status_exception",
        400,
        f"[{inference_id}] is a reserved inference endpoint. Cannot delete a reserved inference endpoint.",
    )


def test_other_endpoints_can_be_deleted() -> None:
    check_deletable("my-elser")
    assert not is_preconfigured("my-elser")


def test_default_endpoints_cannot_be_updated() -> None:
    check_updatable("my-elser")
    expect_error(
        lambda: check_updatable(".elser-2-elasticsearch"),
        "status_exception",
        400,
        "Default endpoint [.elser-2-elasticsearch] cannot be updated",
    )
