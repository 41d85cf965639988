"""`"chunk": true` on `POST /_inference/...`: elserve's chunked inference request.

Elasticsearch's open proposal (elastic/elasticsearch#125160, for #112211) adds
`chunk` to the inference body and answers `chunked_inference_service_result`.
elserve settles what it leaves open: `chunking_settings` per request (as
#111856 planned) replacing the endpoint's, with the same rules and messages as
on PUT; `return_text: false` leaves the chunk text out. Both need `chunk: true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elserve.chunking.settings import ChunkingSettings, parse_chunking_settings
from elserve.errors import ActionRequestValidationException


@dataclass(frozen=True)
class ChunkingRequest:
    settings: ChunkingSettings | None  # None: the endpoint's
    return_text: bool = True


def chunking_request(values: Mapping[str, Any]) -> ChunkingRequest | None:
    """The chunking part of a parsed body, or None when `chunk` is absent or false."""
    if not values.get("chunk", False):
        for field in ("chunking_settings", "return_text"):
            if field in values:
                raise ActionRequestValidationException([f"Field [{field}] can only be specified when [chunk] is true"])
        return None
    settings = None
    if "chunking_settings" in values:
        settings = parse_chunking_settings(values["chunking_settings"])
    return ChunkingRequest(settings=settings, return_text=values.get("return_text", True))
