"""The `word` chunker, case by case as Elasticsearch's `WordBoundaryChunkerTests` (our own data)."""

from __future__ import annotations

import pytest

from elserve.chunking import ChunkOffset, Utf16Text, chunk
from elserve.chunking.settings import WordChunkingSettings
from elserve.chunking.word import word_chunk_positions
from tests.chunking.documents import MULTILINGUAL, PROSE, numbered_words


def texts(text: str, size: int, overlap: int) -> list[str]:
    return [text[p.offset.start : p.offset.end] for p in word_chunk_positions(Utf16Text(text), size, overlap)]


def expected_chunk_count(words: int, size: int, overlap: int) -> int:
    if words < size:
        return 1
    stride = size - overlap
    return 1 + (words - size + stride - 1) // stride


def test_a_window_larger_than_the_text_is_one_chunk() -> None:
    assert texts(PROSE, 10_000, 0) == [PROSE]


@pytest.mark.parametrize("size", [10, 20, 100, 300])
def test_chunk_count_without_overlap(size: int) -> None:
    words = len(PROSE.split())
    assert len(texts(PROSE, size, 0)) == (words + size - 1) // size


@pytest.mark.parametrize("document", MULTILINGUAL)
def test_other_scripts_split(document: str) -> None:
    assert len(texts(document, 10, 0)) > 1


@pytest.mark.parametrize("words", [10, 22, 50, 73, 100])
@pytest.mark.parametrize(("size", "overlap"), [(10, 4), (10, 2), (20, 4), (20, 10)])
def test_chunk_count_with_overlap(words: int, size: int, overlap: int) -> None:
    text = numbered_words(words)
    assert len(chunk(text, WordChunkingSettings(size, overlap))) == expected_chunk_count(words, size, overlap)


@pytest.mark.parametrize("words", [7, 8, 9, 10])
def test_words_within_one_window_and_its_overlap_make_one_chunk(words: int) -> None:
    assert len(texts(numbered_words(words), 10, 3)) == 1


def test_one_word_past_the_window_makes_a_second_chunk() -> None:
    assert len(texts(numbered_words(11), 10, 3)) == 2


@pytest.mark.parametrize("words", [4, 19, 20, 21, 57, 120])
@pytest.mark.parametrize(("size", "overlap"), [(20, 10), (10, 4), (15, 3)])
def test_window_contents(words: int, size: int, overlap: int) -> None:
    text = numbered_words(words).rstrip()
    chunks = texts(text, size, overlap)
    expected = []
    start = 0
    while True:
        end = min(start + size, words)
        body = " ".join(str(i) for i in range(start, end))
        # The space before a window's first word leads it (it follows the previous chunk's last word).
        expected.append(body if start == 0 else " " + body)
        if end == words:
            break
        start += size - overlap
    assert chunks == expected


@pytest.mark.parametrize("text", ["", " ", "   ", "   b", "b", ". ", " , ", " ,"])
def test_tiny_inputs_are_one_chunk(text: str) -> None:
    assert texts(text, 100, 10) == [text]


def test_one_long_word() -> None:
    text = "z" * 32_000
    assert texts(text, 100, 10) == [text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tea, please", ["Tea", ", please"]),
        ("Dr. Watson", ["Dr", ". Watson"]),
        ("Don't stop now", ["Don't", " stop", " now"]),
    ],
)
def test_punctuation_leads_the_next_chunk(text: str, expected: list[str]) -> None:
    assert texts(text, 1, 0) == expected


def test_contraction_is_one_word() -> None:
    assert texts("Don't stop now", 10, 0) == ["Don't stop now"]


def test_overlap_above_half_the_window_is_refused() -> None:
    with pytest.raises(ValueError):
        word_chunk_positions(Utf16Text("not read"), 10, 6)


def test_offsets_count_utf16_units() -> None:
    # Each emoji is two UTF-16 units and no word; the chunk ends right after the word that fills it.
    text = "😀 one 😀 two 😀 three"
    assert len(text) == 19  # code points; 22 UTF-16 units
    assert chunk(text, WordChunkingSettings(2, 0)) == [ChunkOffset(0, 13), ChunkOffset(13, 22)]
