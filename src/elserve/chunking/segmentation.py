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
        for boundary in iterator:
            if status() != _WORD_NONE:
                count += 1
            bounds.append(boundary)
            cumulative.append(count)
        self.bounds = np.frombuffer(bounds, dtype=np.int64)
        self.cumulative = np.frombuffer(cumulative, dtype=np.int64)
        self.length = text.length

    @property
    def word_count(self) -> int:
        return int(self.cumulative[-1])

    def word_ends(self) -> np.ndarray:
        """The boundary that ends each word, in order (what `WordBoundaryChunker` walks)."""
        is_word = np.diff(self.cumulative) > 0
        return self.bounds[1:][is_word]

    def _preceding_index(self, start: int) -> int:
        # `preceding(start)`: the last boundary before `start`; at 0 ICU answers DONE and stays at 0.
        return max(int(np.searchsorted(self.bounds, start, side="left")) - 1, 0)

    def _words_before(self, index: int) -> int:
        return int(self.cumulative[index - 1]) if index > 0 else 0

    def count_words(self, start: int, end: int) -> int:
        """`ChunkerUtils.countWords(start, end, iterator)`: from the boundary before `start` to the last at or before `end`."""
        first = self._preceding_index(start)
        last = int(np.searchsorted(self.bounds, end, side="right")) - 1
        return int(self.cumulative[last]) - self._words_before(first)

    def skip_words(self, start: int, words: int) -> int:
        """`SentenceBoundaryChunker.skipWords`: the boundary after `words` words, counted from the one before `start`."""
        first = self._preceding_index(start)
        if words <= 0:
            return int(self.bounds[first])
        target = self._words_before(first) + words
        index = int(np.searchsorted(self.cumulative, target, side="left"))
        if index + 1 >= len(self.bounds):
            return self.length  # the iterator ran out: `last()`
        return int(self.bounds[index + 1])


def sentence_ends(text: Utf16Text) -> list[int]:
    """The sentence boundaries after 0, as `getSentenceInstance(Locale.ROOT).next()` returns them."""
    iterator = icu.BreakIterator.createSentenceInstance(_ROOT)
    iterator.setText(text.text)
    return list(iterator)
