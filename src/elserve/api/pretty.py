"""`?pretty`: JSON laid out as Elasticsearch's Jackson pretty printer lays it out."""

from __future__ import annotations

from typing import Any

import orjson


def pretty_json(value: Any, indent: int = 0) -> str:
    pad = "  " * (indent + 1)
    end = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{ }"
        items = ",\n".join(
            f"{pad}{orjson.dumps(str(k)).decode()} : {pretty_json(v, indent + 1)}" for k, v in value.items()
        )
        return "{\n" + items + "\n" + end + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[ ]"
        return "[\n" + ",\n".join(pad + pretty_json(v, indent + 1) for v in value) + "\n" + end + "]"
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
