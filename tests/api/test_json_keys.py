"""Duplicate keys: refused as Jackson's strict duplicate detection does, at its location."""

from __future__ import annotations

import pytest

from elserve.api.json_keys import check_duplicate_keys
from elserve.errors import XContentParseException


def test_unique_keys_pass() -> None:
    check_duplicate_keys(b'{"input": ["a"], "task_settings": {"input": 1}}')  # same name, other objects


@pytest.mark.parametrize(
    "raw, where",
    [
        (b'{"input":["a"],"input":["b"]}', "1:23"),
        (b'{\n  "service": "elser",\n  "service": "x"\n}', "3:12"),
        (b'{"a": {"x": 1, "x": 2}}', "1:19"),
    ],
)
def test_duplicates_are_refused_at_their_location(raw: bytes, where: str) -> None:
    with pytest.raises(XContentParseException) as caught:
        check_duplicate_keys(raw)
    error = caught.value
    assert error.reason.startswith(f"[{where}] Duplicate field '")
    assert error.caused_by is not None and error.caused_by.type == "json_parse_exception"


def test_invalid_json_is_left_to_the_parser() -> None:
    check_duplicate_keys(b'{"a": NaN}')  # orjson's verdict stands; nothing raised here
