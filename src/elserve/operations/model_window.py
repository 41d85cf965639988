"""What of a long chunk the model can read: a prefix with the very same tokens, to bound tokenization.

The model reads the first `max_length` word-pieces of a text. A tokenizer
still turns the whole text into tokens first: five megabytes of punctuation
(a chunk without words, or strategy `none`) is five million tokens, seconds of
work and gigabytes of memory, for 512 that are kept. A prefix that ends just
before a character where BERT's pre-tokenizer always starts a new word
(whitespace, punctuation, a CJK ideograph) tokenizes to a prefix of the whole
text's tokens; once that prefix alone overflows the window, the model gets the
same tokens, and the same `is_truncated`, from it.
"""

from __future__ import annotations

import regex

from elserve.runtime import Tokenizer

# A prefix tried first, in characters per token of the window; it doubles until it overflows.
CHARS_PER_TOKEN = 64
# Characters before which BERT's basic tokenizer always splits: whitespace, punctuation
# (Unicode P* and ASCII symbols), CJK ideographs (it spaces them out).
_WORD_START = regex.compile(
    r"[\s\p{P}!-/:-@\[-`{-~\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002A6DF\uF900-\uFAFF\U0002F800-\U0002FA1F]"
)


def _cut(text: str, limit: int) -> int | None:
    """The last position in (limit / 2, limit] before which a new word starts, if any."""
    last = None
    for match in _WORD_START.finditer(text, limit // 2 + 1, limit + 1):
        last = match.start()
    return last


def model_window_text(text: str, tokenizer: Tokenizer) -> str:
    """`text`, or its shortest tried prefix that gives the model the same tokens."""
    limit = CHARS_PER_TOKEN * tokenizer.max_length
    while limit < len(text):
        cut = _cut(text, limit)
        if cut is not None and tokenizer.encode_batch([text[:cut]])[0].is_truncated:
            return text[:cut]
        limit *= 2
    return text
