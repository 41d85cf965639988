"""The ELSER endpoint the tests put: the `elasticsearch` service on `.elser_model_2`, one allocation of
one thread (what a test needs unless it tests the settings themselves)."""

from __future__ import annotations

from typing import Any

ELSER_MODEL_ID = ".elser_model_2"


def elser_config(**extra: Any) -> dict[str, Any]:
    """A fresh `PUT _inference` body (the caller may change it); `extra` adds top-level fields such as
    `chunking_settings` or `task_type`."""
    return {
        "service": "elasticsearch",
        "service_settings": {"model_id": ELSER_MODEL_ID, "num_allocations": 1, "num_threads": 1},
        **extra,
    }
