"""A document as Elasticsearch's chunkers see it: offsets are UTF-16 code units.

Elasticsearch chunks a Java `String`, so its offsets count UTF-16 code units: a
character outside the Basic Multilingual Plane (most emoji) counts 2. ICU's
break iterators (ICU4C through PyICU) count the same way. Python counts code
points. `Utf16Text` keeps the Python string and converts between the two; for a
text without such characters (the common case) both are the same and nothing
is stored.
"""

from __future__ import annotations

import numpy as np


class Utf16Text:
    """A Python string addressed by UTF-16 offsets, as a Java `String` is."""

    __slots__ = ("_cp_to_u16", "length", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._cp_to_u16: np.ndarray | None = None
        if not text.isascii() and len(text.encode("utf-16-le")) > 2 * len(text):
            astral = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32) > 0xFFFF
            # The UTF-16 offset of each code point position 0..len (one past the end included).
            shifts = np.concatenate(([0], np.cumsum(astral, dtype=np.int64)))
            offsets = np.arange(len(text) + 1, dtype=np.int64) + shifts
            self._cp_to_u16 = offsets.astype(np.int32) if offsets[-1] < 2**31 else offsets
        self.length = len(text) if self._cp_to_u16 is None else int(self._cp_to_u16[-1])

    def to_code_points(self, offset: int) -> int:
        """The Python index of a UTF-16 offset (an offset inside a surrogate pair goes to the pair's start)."""
        if self._cp_to_u16 is None:
            return offset
        # The key in the array's own dtype: a Python int would make numpy convert the whole array.
        offsets = self._cp_to_u16
        return int(offsets.searchsorted(offsets.dtype.type(offset), side="right")) - 1

    def to_utf16(self, index: int) -> int:
        """The UTF-16 offset of a Python index."""
        return index if self._cp_to_u16 is None else int(self._cp_to_u16[index])

    def slice(self, start: int, end: int) -> str:
        """`String.substring(start, end)` with UTF-16 offsets."""
        if self._cp_to_u16 is None:
            return self.text[start:end]
        return self.text[self.to_code_points(start) : self.to_code_points(end)]

    def sub(self, start: int, end: int) -> Utf16Text:
        return Utf16Text(self.slice(start, end))
