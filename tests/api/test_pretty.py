from elserve.api.pretty import pretty_json


def test_jackson_layout() -> None:
    assert pretty_json({"a": 1, "b": [1, "x"], "c": {}, "d": [], "e": {"f": None}}) == (
        '{\n  "a" : 1,\n  "b" : [\n    1,\n    "x"\n  ],\n  "c" : { },\n  "d" : [ ],\n  "e" : {\n    "f" : null\n  }\n}'
    )
