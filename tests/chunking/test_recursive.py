"""The `recursive` chunker, case by case as Elasticsearch's `RecursiveChunkerTests` (our own data)."""

from __future__ import annotations

import itertools

import pytest

from elserve.chunking import ChunkOffset, chunk
from elserve.chunking.settings import SEPARATOR_GROUPS, RecursiveChunkingSettings, SentenceChunkingSettings
from elserve.errors import IllegalArgumentException

SENTENCE = "Every one of these ten words counts toward the total. "  # ten words
N = len(SENTENCE)
SEPARATOR_CHOICES = ["\n", "\f", "\t", "#"]
# Ordered choices of two or three separators (a fixed sample of what Elasticsearch draws at random).
SEPARATOR_LISTS = [list(p) for p in itertools.permutations(SEPARATOR_CHOICES, 2)][:6] + [
    list(p) for p in itertools.permutations(SEPARATOR_CHOICES, 3)
][::5]


def document(sentences: int, between: list[str]) -> str:
    assert len(between) == sentences - 1
    return "".join(SENTENCE + (between[i] if i < sentences - 1 else "") for i in range(sentences))


def run(text: str, max_words: int, separators: list[str]) -> list[ChunkOffset]:
    return chunk(text, RecursiveChunkingSettings(max_words, tuple(separators)))


@pytest.mark.parametrize("separators", SEPARATOR_LISTS)
def test_empty_and_short_inputs(separators: list[str]) -> None:
    assert run("", 10, separators) == [ChunkOffset(0, 0)]
    assert run("x", 10, separators) == [ChunkOffset(0, 1)]
    short = "y" * 29
    assert run(short, 30, separators) == [ChunkOffset(0, len(short))]


@pytest.mark.parametrize("separators", SEPARATOR_LISTS)
def test_one_split_without_merges(separators: list[str]) -> None:
    text = document(2, [separators[0]])
    assert run(text, 10, separators) == [ChunkOffset(0, N), ChunkOffset(N, len(text))]


@pytest.mark.parametrize("separators", SEPARATOR_LISTS)
def test_one_split_with_merges(separators: list[str]) -> None:
    first = separators[0]
    text = document(3, [first, first])
    end = 2 * N + len(first)
    assert run(text, 20, separators) == [ChunkOffset(0, end), ChunkOffset(end, len(text))]


@pytest.mark.parametrize("separators", SEPARATOR_LISTS)
def test_several_splits_without_merges(separators: list[str]) -> None:
    a, b = separators[0], separators[1]
    text = document(4, [b, a, b])
    ends = [N, 2 * N + len(b), 3 * N + len(a) + len(b)]
    expected = [ChunkOffset(0, ends[0]), ChunkOffset(ends[0], ends[1]), ChunkOffset(ends[1], ends[2])]
    assert run(text, 15, separators) == [*expected, ChunkOffset(ends[2], len(text))]


@pytest.mark.parametrize("separators", SEPARATOR_LISTS)
def test_several_splits_with_merges(separators: list[str]) -> None:
    a, b = separators[0], separators[1]
    text = document(4, [b, a, b])
    end = 2 * N + len(b)
    assert run(text, 25, separators) == [ChunkOffset(0, end), ChunkOffset(end, len(text))]


@pytest.mark.parametrize("separators", [list(p) for p in itertools.permutations(SEPARATOR_CHOICES, 3)][::4])
def test_a_piece_that_fits_is_not_split_further(separators: list[str]) -> None:
    a, b, c = separators
    text = document(5, [b, a, c, b])
    first = 2 * N + len(b)
    second = 4 * N + len(b) + len(a) + len(c)
    assert run(text, 25, separators) == [
        ChunkOffset(0, first),
        ChunkOffset(first, second),
        ChunkOffset(second, len(text)),
    ]


@pytest.mark.parametrize("separators", SEPARATOR_LISTS)
def test_backup_sentence_chunker(separators: list[str]) -> None:
    text = document(4, ["", separators[0], ""])
    ends = [N, 2 * N, 3 * N + len(separators[0])]
    assert run(text, 10, separators) == [
        ChunkOffset(0, ends[0]),
        ChunkOffset(ends[0], ends[1]),
        ChunkOffset(ends[1], ends[2]),
        ChunkOffset(ends[2], len(text)),
    ]


def test_regex_separators() -> None:
    separators = [r"(?<!\n)\n(?!\n)", r"(?<!\n)\n\n(?!\n)"]
    text = document(4, ["\n", "\n", "\n\n"])
    ends = [N, 2 * N + 1, 3 * N + 2]
    assert run(text, 10, separators) == [
        ChunkOffset(0, ends[0]),
        ChunkOffset(ends[0], ends[1]),
        ChunkOffset(ends[1], ends[2]),
        ChunkOffset(ends[2], len(text)),
    ]


@pytest.mark.parametrize("seed", range(3))
def test_long_document(seed: int) -> None:
    separators = SEPARATOR_LISTS[seed]
    count = 50 + 17 * seed
    between = [separators[(i * 7 + seed) % len(separators)] for i in range(count - 1)]
    text = document(count, between)
    expected, offset = [], 0
    for i in range(count):
        length = N + (len(between[i - 1]) if i else 0)
        expected.append(ChunkOffset(offset, offset + length))
        offset += length
    assert run(text, 15, separators) == expected


MARKDOWN_HEADERS = [
    "# Title\n",
    "## Title\n",
    "### Title\n",
    "#### Title\n",
    "##### Title\n",
    "###### Title\n",
    "Title\n-\n",
    "Title\n=\n",
]


@pytest.mark.parametrize("leading", MARKDOWN_HEADERS)
def test_markdown(leading: str) -> None:
    count = 24
    between = ["\n" + MARKDOWN_HEADERS[(i * 5) % len(MARKDOWN_HEADERS)] for i in range(count - 1)]
    text = leading + document(count, between)
    expected, offset = [], 0
    for i in range(count):
        length = N + (len(leading) if i == 0 else len(between[i - 1]))
        expected.append(ChunkOffset(offset, offset + length))
        offset += length
    assert run(text, 15, list(SEPARATOR_GROUPS["markdown"])) == expected


def test_fifty_separators_that_never_match_fall_back_to_sentences() -> None:
    separators = [f"NEVER_MATCHES_{i}" for i in range(50)]
    text = document(2, [""])
    assert run(text, 10, separators) == [ChunkOffset(0, N), ChunkOffset(N, len(text))]


def test_order_is_kept_when_pieces_resolve_at_different_depths() -> None:
    separators = [f"NO_A_{i}" for i in range(10)] + ["\n"] + [f"NO_B_{i}" for i in range(10)] + ["\t"]
    separators += [f"NO_C_{i}" for i in range(10)]
    text = document(3, ["\t", "\n"])
    assert run(text, 10, separators) == [
        ChunkOffset(0, N),
        ChunkOffset(N, 2 * N + 1),
        ChunkOffset(2 * N + 1, len(text)),
    ]


def test_golden_word_count_starts_at_the_boundary_before_the_piece() -> None:
    # Elasticsearch's `countWords` starts at `preceding(start)`: a piece that starts right
    # after a word counts that word too. So "\nf g h i j" counts 6, 5 + 6 > 10 does not
    # merge, and the result differs from a plain count (which would give [0, 19), [19, 21)).
    text = "a b c d e\nf g h i j\nk"
    assert run(text, 10, ["\n"]) == [ChunkOffset(0, 9), ChunkOffset(9, 21)]


def test_golden_java_dot_stops_at_carriage_return() -> None:
    # The setext separator `\n^(?!\s*$).*\n-{1,}\n` matches "\nHeadline\n---\n"; Java's `.`
    # does not cross `\r`, so with "Head\rline" nothing matches and the sentence chunker
    # (overlap 0) splits the whole text instead (Python's `.` would have matched).
    markdown = list(SEPARATOR_GROUPS["markdown"])
    plain = "intro words here\nHeadline\n---\nbody words here and more"
    assert run(plain, 4, markdown)[0] == ChunkOffset(0, plain.index("\nHeadline"))
    with_cr = "intro words here\nHead\rline\n---\nbody words here and more"
    assert run(with_cr, 4, markdown) == chunk(with_cr, SentenceChunkingSettings(4, 0))
    assert run(with_cr, 4, markdown)[0] != ChunkOffset(0, with_cr.index("\nHead"))


def test_catastrophic_separator_is_a_400_not_a_hang() -> None:
    text = "x" * 5000 + "!" + " word" * 20
    with pytest.raises(IllegalArgumentException, match="has exceeded the time limit"):
        run(text, 10, [r"(x+x+)+y"])
