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


# -- counting colons instead of parsing twice (issue 24 row 9) --------------------------------------

_CASES = [
    (b'{"a":1,"a":2}', True),
    (b'{"a":{"b":1,"b":1}}', True),
    (b'[{"a":1,"a":1}]', True),
    (b'{"a":"x:y","a":"p:q"}', True),  # the dropped value's colons too
    (b'{"a:":1,"b":":"}', False),  # colons inside keys and values
    (b'{"a":[{"x":1},{"x":2}]}', False),  # the same name in other objects
    (b'{"a" :  1.5e3 , "b":[null,true,"\\":"]}', False),
    (b'{"\xc3\xa9:":"\xe2\x82\xac"}', False),
]


@pytest.mark.parametrize("raw, repeated", _CASES)
def test_counting_colons_finds_exactly_the_repeated_keys(raw: bytes, repeated: bool) -> None:
    import json

    import orjson

    from elserve.api.json_keys import has_repeated_keys

    assert has_repeated_keys(raw, orjson.loads(raw)) is repeated
    stdlib_says = False
    try:
        json.loads(
            raw,
            object_pairs_hook=lambda pairs: (
                len({k for k, _ in pairs}) == len(pairs) or (_ for _ in ()).throw(KeyError())
            ),
        )
    except KeyError:
        stdlib_says = True
    assert stdlib_says is repeated


@pytest.mark.parametrize("raw", [b'{"a":1,"a":2}', b'{"k\\u003a":1,"k\\u003A":2}'])
def test_with_the_parsed_body_duplicates_are_still_refused(raw: bytes) -> None:
    import orjson

    with pytest.raises(XContentParseException):
        check_duplicate_keys(raw, orjson.loads(raw))


def test_an_escaped_colon_is_read_again_not_counted() -> None:
    import orjson

    raw = b'{"k\\u003a":1,"b":2}'  # a colon in the parsed key that the raw bytes do not show
    check_duplicate_keys(raw, orjson.loads(raw))  # nothing raised
