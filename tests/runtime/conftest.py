"""Fixtures of the runtime tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from elserve.runtime import Encoder


@pytest.fixture(scope="session")
def splade_encoder(splade_model_dir: Path) -> Encoder:
    """The real SPLADE-tiny encoder, with two threads whatever earlier tests set torch to."""
    return Encoder.load(splade_model_dir, num_threads=2)
