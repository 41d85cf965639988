"""Pathological documents: every strategy gives correct chunks, in bounded time and memory."""

from __future__ import annotations

import numpy as np
import pytest

from elserve.chunking import Utf16Text, chunk
from elserve.chunking.segmentation import WordIndex
from elserve.chunking.settings import (
    SEPARATOR_GROUPS,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)
from tests.chunking.chunk_order import assert_covering, assert_in_order
from tests.chunking.documents import MULTILINGUAL, PROSE

STRATEGIES = {
    "sentence": SentenceChunkingSettings(250, 1),
    "word": WordChunkingSettings(250, 100),
    "recursive": RecursiveChunkingSettings(250, SEPARATOR_GROUPS["plaintext"]),
    "markdown": RecursiveChunkingSettings(250, SEPARATOR_GROUPS["markdown"]),
    "none": NoneChunkingSettings(),
}


def pathological(size: int) -> dict[str, str]:
    """Documents of about `size` characters."""
    mixed = " ".join([PROSE, *MULTILINGUAL, "😀🎉👩‍👩‍👧 𝒜𝓁𝓅𝒽𝒶"]) + "\r\n"
    return {
        "no_whitespace": "abcdefghij" * (size // 10),
        "punctuation_only": ".,;:!?-—()" * (size // 10),
        "emoji_only": "😀🎉👩‍👩‍👧" * (size // 7),
        "mixed_scripts": mixed * (size // len(mixed) + 1),
        "crlf": "one line of words\r\n" * (size // 19),
        "one_sentence": "word " * (size // 5),
    }


def check(text: str, name: str) -> None:
    document = Utf16Text(text)
    settings = STRATEGIES[name]
    chunks = chunk(document, settings)
    if name == "word":
        assert_in_order(chunks, document.length)
    else:
        assert_covering(chunks, document.length)
    if name != "none":
        # Words ending inside each chunk, on the whole text's segmentation.
        ends = WordIndex(document).word_ends()
        starts = np.searchsorted(ends, [c.start for c in chunks], "right")
        counts = np.searchsorted(ends, [c.end for c in chunks], "right") - starts
        assert counts.max() <= settings.max_chunk_size


@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("kind", list(pathological(100)))
def test_pathological_documents(kind: str, name: str) -> None:
    check(pathological(60_000)[kind], name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("kind", list(pathological(100)))
def test_five_megabyte_documents(kind: str, name: str) -> None:
    check(pathological(5_000_000)[kind], name)
