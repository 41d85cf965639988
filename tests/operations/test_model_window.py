"""A long chunk is sent as a prefix with the very same tokens (real SPLADE tokenizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elserve.operations.model_window import CHARS_PER_TOKEN, model_window_text
from elserve.runtime import Tokenizer
from tests.chunking.golden_documents import MARKDOWN, MIXED


@pytest.fixture(scope="module")
def tokenizer(splade_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_dir(splade_model_dir)


LONG = {
    "punctuation": ".,;:!?()" * 60_000,
    "words": "river " * 80_000,
    "mixed": MIXED * 3_000,
    "markdown": MARKDOWN * 2_000,
    "cjk": "東京は晴れ。" * 40_000,
    "spaces_then_punctuation": " " * 100_000 + "." * 100_000,
    "one_long_word": "abcdefghij" * 50_000,
}


@pytest.mark.parametrize("name", list(LONG))
def test_same_tokens_from_a_bounded_prefix(tokenizer: Tokenizer, name: str) -> None:
    text = LONG[name]
    window = model_window_text(text, tokenizer)
    (full,) = tokenizer.encode_batch([text])
    (sent,) = tokenizer.encode_batch([window])
    assert np.array_equal(full.ids, sent.ids) and full.is_truncated == sent.is_truncated
    if name in ("punctuation", "words", "mixed", "markdown", "cjk"):
        assert len(window) <= CHARS_PER_TOKEN * tokenizer.max_length  # cut at the first try


def test_short_text_is_sent_whole(tokenizer: Tokenizer) -> None:
    assert model_window_text(MIXED, tokenizer) is MIXED
