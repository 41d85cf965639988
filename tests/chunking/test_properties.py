"""Properties of every chunker on generated documents (hypothesis).

- chunks cover the document in order: the first starts at 0, starts and ends never go back,
  the last ends at the end (the word chunker may leave out a tail without words);
- each chunk holds at most `max_chunk_size` words (counted on the whole text's ICU words);
- the word chunker's neighbours share exactly `overlap` words; without overlap, chunks touch.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elserve.chunking import ChunkOffset, Utf16Text, chunk
from elserve.chunking.segmentation import WordIndex
from elserve.chunking.settings import (
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)
from tests.chunking.chunk_order import assert_covering, assert_in_order

WORDS = st.sampled_from(
    ["river", "Sea", "42", "3.5", "naïve", "Straße", "東京", "สวัสดี", "мир", "نهر", "x", "don't", "A1"]
)
GAPS = st.sampled_from([" ", " ", " ", ", ", ". ", "! ", "? ", "\n", "\n\n", "\r\n", " 😀 ", " — ", "\t", "# "])


@st.composite
def documents(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, 160))
    parts = []
    for _ in range(count):
        parts.append(draw(WORDS))
        parts.append(draw(GAPS))
    return "".join(parts)


ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def word_ends_within(words: WordIndex, chunk_offset: ChunkOffset) -> int:
    """The words that end inside a chunk, on the whole text's segmentation."""
    ends = words.word_ends()
    return int(np.searchsorted(ends, chunk_offset.end, "right") - np.searchsorted(ends, chunk_offset.start, "right"))


@SETTINGS
@given(documents(), st.integers(10, 40), st.data())
def test_word_chunker(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size // 2))
    document = Utf16Text(text)
    chunks = chunk(document, WordChunkingSettings(size, overlap))
    words = WordIndex(document)
    assert_in_order(chunks, document.length)
    assert all(word_ends_within(words, c) <= size for c in chunks)
    # Whatever follows the last chunk holds no word.
    assert word_ends_within(words, ChunkOffset(chunks[-1].end, document.length)) == 0
    for previous, following in pairwise(chunks):
        assert word_ends_within(words, ChunkOffset(following.start, previous.end)) == overlap
    if overlap == 0 and len(chunks) > 1:
        assert all(p.end == f.start for p, f in pairwise(chunks))


@SETTINGS
@given(documents(), st.integers(20, 60), st.sampled_from([0, 1]))
def test_sentence_chunker(text: str, size: int, overlap: int) -> None:
    document = Utf16Text(text)
    chunks = chunk(document, SentenceChunkingSettings(size, overlap))
    words = WordIndex(document)
    assert_in_order(chunks, document.length)
    assert_covering(chunks, document.length)
    assert all(word_ends_within(words, c) <= size for c in chunks)


@SETTINGS
@given(documents(), st.integers(10, 60), st.sampled_from(["plaintext", "markdown", "custom"]))
def test_recursive_chunker(text: str, size: int, group: str) -> None:
    separators = {"plaintext": None, "markdown": None, "custom": (r"\n\n", r"[.!?] ", r"\s")}[group]
    if group == "custom":
        settings_ = RecursiveChunkingSettings(size, separators)
    else:
        from elserve.chunking.settings import SEPARATOR_GROUPS

        settings_ = RecursiveChunkingSettings(size, SEPARATOR_GROUPS[group])
    document = Utf16Text(text)
    chunks = chunk(document, settings_)
    words = WordIndex(document)
    assert_covering(chunks, document.length)
    assert all(word_ends_within(words, c) <= size for c in chunks)


@SETTINGS
@given(ANY_TEXT)
def test_any_text_chunks_in_order_with_every_strategy(text: str) -> None:
    document = Utf16Text(text)
    assert chunk(document, NoneChunkingSettings()) == [ChunkOffset(0, document.length)]
    assert_in_order(chunk(document, WordChunkingSettings(10, 3)), document.length)
    for overlap in (0, 1):
        assert_covering(chunk(document, SentenceChunkingSettings(20, overlap)), document.length)
    assert_covering(chunk(document, RecursiveChunkingSettings(10)), document.length)


@SETTINGS
@given(ANY_TEXT)
def test_utf16_offsets_slice_back_to_python_text(text: str) -> None:
    document = Utf16Text(text)
    assert document.length == len(text.encode("utf-16-le")) // 2
    for piece in chunk(document, WordChunkingSettings(10, 0)):
        start, end = document.to_code_points(piece.start), document.to_code_points(piece.end)
        assert document.to_utf16(start) == piece.start  # chunk offsets never split a surrogate pair
        assert document.slice(*piece) == text[start:end]
