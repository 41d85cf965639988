"""The `sentence` chunker, case by case as Elasticsearch's `SentenceBoundaryChunkerTests` (our own data)."""

from __future__ import annotations

import re

import pytest

from elserve.chunking import ChunkOffset, Utf16Text, chunk
from elserve.chunking.segmentation import WordIndex
from elserve.chunking.sentence import max_words_in_overlap, sentence_chunks
from elserve.chunking.settings import SentenceChunkingSettings
from tests.chunking.documents import PROSE, whitespace_sentence_sizes


def texts(text: str, max_words: int, overlap: bool) -> list[str]:
    return [text[c.start : c.end] for c in sentence_chunks(Utf16Text(text), max_words, overlap)]


def chunk_overlaps(sizes: list[int], max_words: int, overlap: bool) -> list[int]:
    """The words each chunk carries over from the previous sentence (0: it starts a sentence)."""
    carried = [0]
    running = 0
    for i, size in enumerate(sizes):
        if running + size > max_words:
            running = size
            if overlap and i > 0:
                carry = min(max_words_in_overlap(max_words), sizes[i - 1])
                carried.append(carry)
                running += carry
            else:
                carried.append(0)
        else:
            running += size
    return carried


def make_sentence(words: int, index: int, marker: str = "Begin") -> str:
    return f"{marker}{index} " + "".join(f"{i} " for i in range(1, words - 1)) + f"{words - 1}. "


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("text", ["", "   ", "   b", "b", ". ", " , ", " ,"])
def test_tiny_inputs_are_one_chunk(text: str, overlap: bool) -> None:
    assert texts(text, 100, overlap) == [text]


@pytest.mark.parametrize("overlap", [False, True])
def test_one_long_word(overlap: bool) -> None:
    text = "q" * 32_000
    assert texts(text, 100, overlap) == [text]


@pytest.mark.parametrize("max_words", [100, 200])
def test_large_chunks_hold_whole_sentences(max_words: int) -> None:
    chunks = texts(PROSE, max_words, False)
    assert len(chunks) == len(chunk_overlaps(whitespace_sentence_sizes(PROSE), max_words, False))
    for piece in chunks:
        assert piece[0].isupper()
        assert piece.strip().endswith(".")
    assert "".join(chunks) == PROSE


@pytest.mark.parametrize("max_words", [70, 80, 100, 120, 150, 200])
def test_large_chunks_with_overlap(max_words: int) -> None:
    chunks = texts(PROSE, max_words, True)
    carried = chunk_overlaps(whitespace_sentence_sizes(PROSE), max_words, True)
    assert len(chunks) == len(carried)
    for i, words in enumerate(carried):
        if words == 0:
            assert chunks[i][0].isupper()
        else:
            assert chunks[i - 1][-20:] in chunks[i]
    assert chunks[0].strip().endswith(".") and chunks[-1].strip().endswith(".")


@pytest.mark.parametrize("sentences_per_chunk", [2, 3, 4, 5])
def test_overlap_starts_each_chunk_with_the_previous_sentence(sentences_per_chunk: int) -> None:
    chunk_size, chunk_count = 100, 4
    sentence_words = chunk_size // sentences_per_chunk - 1
    parts, starts, index = [], [0], 0
    for _ in range(sentences_per_chunk):
        parts.append(make_sentence(sentence_words, index))
        index += 1
    for _ in range(1, chunk_count):
        starts.append(index - 1)
        words = sentence_words
        while words + sentence_words < chunk_size:
            parts.append(make_sentence(sentence_words, index))
            index += 1
            words += sentence_words
    chunks = texts("".join(parts), chunk_size, True)
    assert len(chunks) == chunk_count
    for piece, start in zip(chunks, starts, strict=True):
        assert piece.startswith(f"Begin{start} ")
        assert piece.strip().endswith(".")


@pytest.mark.parametrize("overlap", [False, True])
def test_a_chunk_larger_than_the_text(overlap: bool) -> None:
    assert texts(PROSE, 500, overlap) == [PROSE]


@pytest.mark.parametrize("max_words", [10, 30, 50])
def test_long_sentences_split_on_words(max_words: int) -> None:
    for piece in texts(PROSE, max_words, False):
        words = len(re.findall(r"\w+", piece))  # punctuation leading a piece is no word
        if piece.strip().endswith("."):
            assert words <= max_words  # a sentence's end: may be short
        else:
            assert words == max_words  # cut inside a sentence: full


@pytest.mark.parametrize("max_words", [10, 30, 50])
def test_long_sentences_with_overlap_keep_the_ends(max_words: int) -> None:
    chunks = texts(PROSE, max_words, True)
    assert chunks[0].startswith("Rivers carry water from high ground")
    assert chunks[-1].endswith("to hold the water back.")


def test_short_long_short_sentences_with_overlap() -> None:
    text = "".join(make_sentence(words, i, "Part") for i, words in enumerate([15, 30, 20, 5]))
    chunks = [c.strip() for c in texts(text, 40, True)]
    assert len(chunks) == 5
    assert chunks[0].startswith("Part0") and chunks[0].endswith(".")  # the first sentence whole
    assert chunks[1].startswith("Part0") and not chunks[1].endswith(".")  # its overlap, then a cut long one
    assert chunks[2].endswith(".") and chunks[3].endswith(".")
    assert chunks[4].startswith("Part2") and "Part3" in chunks[4] and chunks[4].endswith(".")


def test_skip_words() -> None:
    text = "".join(f"item{i} " for i in range(50))
    words = WordIndex(Utf16Text(text))
    position = words.skip_words(0, 3)
    assert text[position:].startswith("item3 ")
    position = words.skip_words(position + 1, 1)
    assert text[position:].startswith("item4 ")
    position = words.skip_words(position + 1, 5)
    assert text[position:].startswith("item9 ")
    assert words.skip_words(0, 60) == len(text)  # past the end: the end


def test_golden_offsets_with_overlap() -> None:
    # Sentences of 12, 12 and 2 words, max 20. The second chunk starts with the first
    # sentence cut to its last min(20 / 2, 20) = 10 words: `skipWords` passes "One two"
    # and the space after, so it starts at "three". 10 + 12 = 22 words is still too many,
    # so that piece is split by the word chunker (overlap min(20, 19 / 2) = 9): one full
    # window of 20 words ending after "kappa", and an open tail starting after word
    # 11 ("Alpha") that the last sentence joins.
    first = "One two three four five six seven eight nine ten eleven twelve. "
    second = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu. "
    text = first + second + "The end."
    assert len(first) == 64
    kappa_end = text.index(" lambda")
    alpha_end = text.index(" beta")
    assert (kappa_end, alpha_end) == (120, 69)
    assert chunk(text, SentenceChunkingSettings(20, 1)) == [
        ChunkOffset(0, 64),
        ChunkOffset(text.index("three"), kappa_end),
        ChunkOffset(alpha_end, len(text)),
    ]
    # Without overlap, the sentences simply pack: 12, then 12 + 2.
    assert chunk(text, SentenceChunkingSettings(20, 0)) == [ChunkOffset(0, 64), ChunkOffset(64, len(text))]


def test_golden_offsets_cjk_and_emoji() -> None:
    text = "東京は日本の首都です。大阪は第二の都市です。🎉 祝!"
    # ICU: 6 + 6 + 1 words; max 20 holds them all. The emoji counts 2 units and no word.
    assert chunk(text, SentenceChunkingSettings(20, 0)) == [ChunkOffset(0, len(text) + 1)]
    assert chunk(text, SentenceChunkingSettings(20, 1)) == [ChunkOffset(0, len(text) + 1)]
