"""Elasticsearch's `TimeValue`: durations written with a unit (`30s`, `500ms`, `-1` for none)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from elserve.errors import ParseException

_TIME = re.compile(r"^(\d+(?:\.\d+)?)(nanos|micros|ms|s|m|h|d)$")
_UNIT_SECONDS = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class TimeValue:
    """A duration as written (`30s`), kept for messages, and its seconds (None: `-1`, no limit)."""

    text: str
    seconds: float | None


def parse_time(value: str | None, setting: str, default: str) -> TimeValue:
    text = default if value is None else value
    if text == "-1":
        return TimeValue(text, None)
    if text == "0":
        return TimeValue(text, 0.0)
    match = _TIME.match(text.strip().lower())
    if match is None:
        if text.startswith("-"):
            raise ParseException(
                f"failed to parse setting [{setting}] with value [{text}] as a time value: "
                "negative durations are not supported"
            )
        raise ParseException(
            f"failed to parse setting [{setting}] with value [{text}] as a time value: unit is missing or unrecognized"
        )
    return TimeValue(text, float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
