import pytest

from elserve.errors import ParseException
from elserve.timevalue import parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("-1", None),
        ("0", 0.0),
        ("1.5s", 1.5),
    ],
)
def test_units(text: str, seconds: float | None) -> None:
    value = parse_time(text, "timeout", "30s")
    assert value.seconds == seconds and value.text == text


def test_default() -> None:
    assert parse_time(None, "timeout", "30s").seconds == 30.0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("30", "failed to parse setting [timeout] with value [30] as a time value: unit is missing or unrecognized"),
        ("abc", "failed to parse setting [timeout] with value [abc] as a time value: unit is missing or unrecognized"),
        (
            "-5s",
            "failed to parse setting [timeout] with value [-5s] as a time value: negative durations are not supported",
        ),
    ],
)
def test_errors(text: str, reason: str) -> None:
    with pytest.raises(ParseException) as caught:
        parse_time(text, "timeout", "30s")
    assert caught.value.reason == reason
