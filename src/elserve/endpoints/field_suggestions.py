"""The "did you mean" of an object parser's unknown-field error (`SuggestingErrorOnUnknown.suggest`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _levenshtein_similarity(target: str, other: str) -> float:
    """Lucene's `LevenshteinDistance.getDistance`: 1 - edits / longer length, in float32."""
    n, m = len(target), len(other)
    if n == 0 or m == 0:
        return 1.0 if n == m else 0.0
    previous = list(range(n + 1))
    for j in range(1, m + 1):
        current = [j] + [0] * n
        for i in range(1, n + 1):
            cost = 0 if target[i - 1] == other[j - 1] else 1
            current[i] = min(current[i - 1] + 1, previous[i] + 1, previous[i - 1] + cost)
        previous = current
    return float(np.float32(1.0) - np.float32(previous[n]) / np.float32(max(n, m)))


def did_you_mean(unknown: str, candidates: Iterable[str]) -> str:
    """Candidates scoring above 0.5, best first, then by name; "" when none does."""
    scored = [(_levenshtein_similarity(unknown, name), name) for name in candidates]
    keys = [name for score, name in sorted((s for s in scored if s[0] > 0.5), key=lambda s: (-s[0], s[1]))]
    if not keys:
        return ""
    if len(keys) == 1:
        return f" did you mean [{keys[0]}]?"
    return f" did you mean any of [{', '.join(keys)}]?"
