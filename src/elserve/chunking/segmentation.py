"""ICU word and sentence boundaries, as Elasticsearch's chunkers read them.

Elasticsearch uses ICU4J's `BreakIterator.getWordInstance(Locale.ROOT)` and
`getSentenceInstance(Locale.ROOT)`; elserve uses the same rules through ICU4C
(PyICU). A word is a segment whose rule status is not `WORD_NONE` (0): letters,
numbers, kana, ideographs count; spaces and punctuation do not. The rule status
of a boundary belongs to the segment that ends there.

`WordIndex` walks the text once and keeps every boundary with a running count
of words, so that the two questions the chunkers ask (`ChunkerUtils.countWords`,
`SentenceBoundaryChunker.skipWords`) are answered by binary search instead of a
fresh walk each time. Both keep Elasticsearch's exact behaviour, including its
start at the boundary *before* `start` (`wordIterator.preceding(start)`), whose
segment is counted too.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

import icu
import numpy as np

from elserve.chunking.text import Utf16Text

_ROOT = icu.Locale.getRoot()
_WORD_NONE = 0  # BreakIterator.WORD_NONE


def _word_iterator(text: str) -> icu.BreakIterator:
    iterator = icu.BreakIterator.createWordInstance(_ROOT)
    iterator.setText(text)
    return iterator


class WordIndex:
    """Every word boundary of a text (UTF-16 offsets), and the number of words ending at or before each."""

    __slots__ = ("bounds", "cumulative", "length")

    def __init__(self, text: Utf16Text) -> None:
        iterator = _word_iterator(text.text)
        bounds = array("q", [0])
        cumulative = array("q", [0])
        count = 0
        status = iterator.getRuleStatus
        add_bound, add_count = bounds.append, cumulative.append
        for boundary in iterator:
            if status() != _WORD_NONE:
                count += 1
            add_bound(boundary)
            add_count(count)
        # Plain arrays: `bisect` answers one question faster than a numpy call does.
        self.bounds = bounds
        self.cumulative = cumulative
        self.length = text.length

    @property
    def word_count(self) -> int:
        return self.cumulative[-1]

    def word_ends(self) -> np.ndarray:
        """The boundary that ends each word, in order (what `WordBoundaryChunker` walks)."""
        bounds = np.frombuffer(self.bounds, dtype=np.int64)
        is_word = np.diff(np.frombuffer(self.cumulative, dtype=np.int64)) > 0
        return bounds[1:][is_word]

    def _preceding_index(self, start: int) -> int:
        # `preceding(start)`: the last boundary before `start`; at 0 ICU answers DONE and stays at 0.
        index = bisect_left(self.bounds, start) - 1
        return index if index > 0 else 0

    def _words_before(self, index: int) -> int:
        return self.cumulative[index - 1] if index > 0 else 0

    def count_words(self, start: int, end: int) -> int:
        """`ChunkerUtils.countWords(start, end, iterator)`: words from the boundary before `start` to the last
        boundary at or before `end`."""
        first = self._preceding_index(start)
        last = bisect_right(self.bounds, end) - 1
        return self.cumulative[last] - self._words_before(first)

    def skip_words(self, start: int, words: int) -> int:
        """`SentenceBoundaryChunker.skipWords`: the boundary after `words` words, counted from the boundary
        before `start`."""
        first = self._preceding_index(start)
        if words <= 0:
            return self.bounds[first]
        target = self._words_before(first) + words
        index = bisect_left(self.cumulative, target)
        if index + 1 >= len(self.bounds):
            return self.length  # the iterator ran out: `last()`
        return self.bounds[index + 1]


def sentence_ends(text: Utf16Text) -> list[int]:
    """The sentence boundaries after 0, as `getSentenceInstance(Locale.ROOT).next()` returns them."""
    iterator = icu.BreakIterator.createSentenceInstance(_ROOT)
    iterator.setText(text.text)
    return list(iterator)
