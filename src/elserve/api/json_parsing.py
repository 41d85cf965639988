"""A request body's JSON, parsed where it does not hold up other clients.

Parsing holds the GIL for its whole length (orjson is one C call), and a body's objects take
several times its bytes (a list of short strings: about 5x). A body up to `LARGE_BODY_BYTES`
parses in well under a millisecond, on the event loop. A larger one is parsed on a worker thread,
at most `LARGE_PARSES` at once: the loop keeps answering other clients between the steps, and the
memory that parsing adds is that of at most `LARGE_PARSES` bodies' objects, whatever the number of
large requests arriving together (each one waiting holds only its own bytes).

The checks for repeated keys (json_keys.py) count colons instead of parsing the body twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from elserve.api.json_keys import check_duplicate_keys

LARGE_BODY_BYTES = 1 << 20
LARGE_PARSES = 2

# One semaphore per event loop (a semaphore belongs to the loop it first waited in; tests run several).
_large_parses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _large_parses.get(loop)
    if semaphore is None:
        semaphore = _large_parses[loop] = asyncio.Semaphore(LARGE_PARSES)
    return semaphore


def parse_json(raw: bytes) -> Any:
    """The body's JSON value; `orjson.JSONDecodeError` when it is not JSON, Elasticsearch's parse error when
    an object repeats a key."""
    parsed = orjson.loads(raw)
    check_duplicate_keys(raw, parsed)
    return parsed


# Set while this task holds a slot: a route that holds one for its whole work parses within it.
_holding: contextvars.ContextVar[bool] = contextvars.ContextVar("elserve_large_body_slot", default=False)


@asynccontextmanager
async def large_body_slot(raw: bytes) -> AsyncIterator[None]:
    """One of the `LARGE_PARSES` slots while a large body is parsed, or longer: a route whose parsed body
    is large all through its work (a vocabulary) holds the slot until it is done, so that at most
    `LARGE_PARSES` such bodies' objects exist at once. A small body takes no slot."""
    if len(raw) <= LARGE_BODY_BYTES or _holding.get():
        yield
        return
    async with _semaphore():
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)


async def parse_json_body(raw: bytes) -> Any:
    """`parse_json`, on a worker thread for a large body (holding a slot: at most `LARGE_PARSES` at once)."""
    if len(raw) <= LARGE_BODY_BYTES:
        return parse_json(raw)
    async with large_body_slot(raw):
        return await asyncio.to_thread(parse_json, raw)
