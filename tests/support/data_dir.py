"""Where the tests keep what they download (the real SPLADE-tiny wheel, its install) between runs."""

from __future__ import annotations

from pathlib import Path

TEST_DATA = Path(__file__).resolve().parents[2] / ".test-data"
