"""Golden offsets: prose, code, markdown, Thai, CJK, emoji, CRLF and a very long sentence.

The expected offsets were produced by a line-for-line Java transcription of
Elasticsearch's `WordBoundaryChunker`, `SentenceBoundaryChunker` and
`RecursiveChunker` running on ICU4J and `java.util.regex` (a local check, not
part of this repository), and agree with the algorithm read by hand from the
spec. They are UTF-16 offsets, as Elasticsearch's.
"""

from __future__ import annotations

import pytest

from elserve.chunking import chunk
from elserve.chunking.settings import (
    SEPARATOR_GROUPS,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)
from tests.chunking.golden_documents import CODE, LONG_SENTENCE, MARKDOWN, MIXED, THAI

GOLDEN = [
    (
        CODE,
        RecursiveChunkingSettings(20, SEPARATOR_GROUPS["plaintext"]),
        [(0, 108), (108, 227), (227, 285), (285, 441)],
    ),
    (
        CODE,
        WordChunkingSettings(12, 4),
        [(0, 74), (53, 131), (108, 180), (150, 267), (217, 332), (285, 393), (361, 441)],
    ),
    (CODE, SentenceChunkingSettings(20, 1), [(0, 109), (95, 185), (153, 287), (286, 441)]),
    (THAI, WordChunkingSettings(10, 3), [(0, 58), (41, 93), (80, 127), (111, 153), (141, 183)]),
    (THAI, SentenceChunkingSettings(20, 1), [(0, 108), (62, 153), (115, 183)]),
    (
        THAI,
        RecursiveChunkingSettings(10, SEPARATOR_GROUPS["plaintext"]),
        [(0, 58), (38, 87), (64, 115), (98, 141), (127, 169), (150, 183)],
    ),
    (
        LONG_SENTENCE,
        SentenceChunkingSettings(25, 1),
        [(0, 131), (65, 216), (138, 290), (220, 369), (295, 442), (377, 511)],
    ),
    (LONG_SENTENCE, SentenceChunkingSettings(30, 0), [(0, 158), (81, 260), (183, 357), (274, 446), (369, 511)]),
    (LONG_SENTENCE, WordChunkingSettings(30, 10), [(0, 158), (102, 283), (227, 407), (348, 511)]),
    (
        MARKDOWN,
        RecursiveChunkingSettings(20, SEPARATOR_GROUPS["markdown"]),
        [(0, 81), (81, 181), (181, 210), (210, 268), (268, 335)],
    ),
    (
        MARKDOWN,
        RecursiveChunkingSettings(12, SEPARATOR_GROUPS["markdown"]),
        [(0, 15), (15, 75), (51, 81), (81, 92), (92, 161), (131, 181), (181, 210), (210, 268), (268, 335)],
    ),
    (MARKDOWN, SentenceChunkingSettings(20, 1), [(0, 92), (91, 181), (127, 243), (231, 335)]),
    (MIXED, SentenceChunkingSettings(20, 1), [(0, 73), (66, 117), (73, 181)]),
    (MIXED, WordChunkingSettings(10, 5), [(0, 57), (30, 69), (57, 91), (69, 132), (91, 170), (132, 181)]),
    (MIXED, RecursiveChunkingSettings(10, SEPARATOR_GROUPS["plaintext"]), [(0, 59), (59, 73), (73, 116), (116, 181)]),
]


@pytest.mark.parametrize(("text", "settings", "expected"), GOLDEN)
def test_golden_offsets(text: str, settings: object, expected: list[tuple[int, int]]) -> None:
    assert [tuple(c) for c in chunk(text, settings)] == expected
