"""`CountingOpener`: the real `open_source`, counting how often a source is fetched (a cache or a
download that should fetch once is checked by the count)."""

from __future__ import annotations

from elserve.models.sources import Source, open_source


class CountingOpener:
    """The real `open_source`, counting how often a source is fetched."""

    def __init__(self) -> None:
        self.sources: list[str] = []

    def __call__(self, source: str, sha256: str | None) -> Source:
        self.sources.append(source)
        return open_source(source, sha256)
