"""The endpoint value: echo (with live allocations), stored form and its round trip."""

from __future__ import annotations

import pytest

from elserve.chunking.settings import NoneChunkingSettings, RecursiveChunkingSettings, WordChunkingSettings
from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.endpoints.endpoint import Endpoint
from elserve.endpoints.service_settings import ServiceSettings
from elserve.endpoints.task_types import TaskType

ADAPTIVE = Endpoint(
    "adaptive-elser",
    TaskType.SPARSE_EMBEDDING,
    ServiceSettings(num_threads=1, model_id=".elser_model_2", adaptive_allocations=AdaptiveAllocations(True, 0, 8)),
    RecursiveChunkingSettings(120),
)
FIXED = Endpoint(
    "fixed-elser",
    TaskType.SPARSE_EMBEDDING,
    ServiceSettings(num_threads=4, model_id=".elser_model_2_linux-x86_64", num_allocations=2),
    WordChunkingSettings(100, 10),
)
ATTACHED = Endpoint(
    "attached",
    TaskType.SPARSE_EMBEDDING,
    ServiceSettings(num_threads=1, model_id=".elser_model_2", num_allocations=1, deployment_id="shared"),
    NoneChunkingSettings(),
)


def test_get_shows_live_allocations_even_when_never_set() -> None:
    body = ADAPTIVE.to_dict(live_allocations=0)
    assert body["service_settings"] == {
        "num_allocations": 0,
        "num_threads": 1,
        "model_id": ".elser_model_2",
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 8},
    }
    assert list(body["service_settings"]) == ["num_allocations", "num_threads", "model_id", "adaptive_allocations"]
    assert "num_allocations" not in ADAPTIVE.to_dict()["service_settings"]
    assert FIXED.to_dict(live_allocations=5)["service_settings"]["num_allocations"] == 5


def test_echo_key_order() -> None:
    assert list(FIXED.to_dict()) == ["inference_id", "task_type", "service", "service_settings", "chunking_settings"]
    assert ATTACHED.to_dict()["service_settings"] == {
        "num_allocations": 1,
        "num_threads": 1,
        "model_id": ".elser_model_2",
        "deployment_id": "shared",
    }


def test_deployment_id() -> None:
    assert FIXED.deployment_id == "fixed-elser" and FIXED.owns_deployment
    assert ATTACHED.deployment_id == "shared" and not ATTACHED.owns_deployment


@pytest.mark.parametrize("endpoint", [ADAPTIVE, FIXED, ATTACHED])
def test_persisted_round_trip(endpoint: Endpoint) -> None:
    stored = endpoint.to_persisted()
    assert stored["task_settings"] == {}
    assert Endpoint.from_persisted(stored) == endpoint


def test_stored_without_chunking_settings_shows_word_250_100() -> None:
    stored = FIXED.to_persisted()
    del stored["chunking_settings"]
    endpoint = Endpoint.from_persisted(stored)
    assert endpoint.to_dict()["chunking_settings"] == {"strategy": "word", "max_chunk_size": 250, "overlap": 100}


def test_stored_pre_8_13_model_version_and_elser_service() -> None:
    endpoint = Endpoint.from_persisted(
        {
            "model_id": "old",
            "task_type": "sparse_embedding",
            "service": "elser",
            "service_settings": {"num_allocations": 1, "num_threads": 1, "model_version": ".elser_model_2"},
        }
    )
    assert endpoint.inference_id == "old"
    assert endpoint.model_id == ".elser_model_2"
    assert endpoint.service == "elasticsearch"
