"""Large request bodies parsed off the event loop, a bounded number at once (issue 24 row 9)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from elserve.api import json_parsing
from elserve.api.json_parsing import (
    LARGE_BODY_BYTES,
    LARGE_PARSES,
    large_body_slot,
    parse_json_body,
)
from elserve.errors import XContentParseException

LARGE = b'{"input": ["' + b"x" * (LARGE_BODY_BYTES + 1) + b'"]}'


def test_small_and_large_bodies_parse_alike() -> None:
    assert asyncio.run(parse_json_body(b'{"input": ["a"]}')) == {"input": ["a"]}
    assert asyncio.run(parse_json_body(LARGE))["input"][0] == "x" * (LARGE_BODY_BYTES + 1)


def test_a_repeated_key_in_a_large_body_is_refused() -> None:
    with pytest.raises(XContentParseException, match="Duplicate field 'input'"):
        asyncio.run(parse_json_body(LARGE[:-1] + b', "input": []}'))


def test_large_parses_run_off_the_loop_and_at_most_so_many_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running = 0
    most = 0
    loop_thread: list[int] = []
    parse_threads: set[int] = set()
    lock = threading.Lock()
    real = json_parsing.parse_json

    def counting(raw: bytes) -> object:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            parse_threads.add(threading.get_ident())
        time.sleep(0.05)
        try:
            return real(raw)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(json_parsing, "parse_json", counting)

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        await asyncio.gather(*(parse_json_body(LARGE) for _ in range(6)))

    asyncio.run(main())
    assert most == LARGE_PARSES
    assert parse_threads and loop_thread[0] not in parse_threads


def test_a_held_slot_covers_the_parse_inside_it() -> None:
    async def main() -> object:
        async with large_body_slot(LARGE):  # a route holding its slot parses without a second one
            return await asyncio.wait_for(parse_json_body(LARGE), 60)

    assert asyncio.run(main())
