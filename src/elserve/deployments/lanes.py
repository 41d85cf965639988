"""Search-like or ingest-like: which requests are served first.

A search query is one or a few short texts and someone waits for it; ingest is
many texts or long ones (documents, chunks) and its throughput matters more
than one batch's latency. Elasticsearch cannot tell them apart for a sparse
embedding deployment (elastic/elasticsearch#93769: a query waits behind
bulk); elserve does, by this rule, overridable per request with its
`priority` query parameter (`search` or `ingest`).

Search-like entries are taken before ingest-like ones, in batches of their
own, and a deployment that has seen ingest runs them on a query lane while an
allocation runs a batch: one worker at normal OS priority while the allocations
run at a lower one, so a query does not wait for a bulk batch to finish
(`query_lane.py`; `deployment.py` routes them).
"""

from __future__ import annotations

from elserve.errors import IllegalArgumentException

# At most this many inputs, of at most this many tokens in all ([CLS] and [SEP] included): search-like.
# Queries are a few words; ingest sends documents or chunks (Elasticsearch's default chunks are 250 words).
SEARCH_MAX_INPUTS = 4
SEARCH_MAX_TOKENS = 128
PRIORITIES = ("search", "ingest")


def parse_request_priority(value: str | None) -> str | None:
    """The `priority` query parameter of an inference request: `search`, `ingest`, or absent."""
    if value is None:
        return None
    if value not in PRIORITIES:
        raise IllegalArgumentException(f"[priority] must be one of [search, ingest], got [{value}]")
    return value


def is_search(token_counts: list[int], priority: str | None = None) -> bool:
    """Whether a request of these inputs (their token counts) is served as a search query."""
    if priority is not None:
        return priority == "search"
    return len(token_counts) <= SEARCH_MAX_INPUTS and sum(token_counts) <= SEARCH_MAX_TOKENS
