"""The flood-stage watermark as Elasticsearch reads its setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from elserve.store.disk_space import MAX_HEADROOM_BYTES, disk_room, parse_flood_stage

TB = 2**40


@pytest.mark.parametrize(
    ("text", "total", "kept"),
    [
        ("95%", 100 * 2**30, 5 * 2**30),
        ("95%", 10 * TB, MAX_HEADROOM_BYTES),  # the default's headroom cap
        ("90%", 10 * TB, TB),  # set: no cap
        ("0.9", 10 * TB, TB),
        ("500mb", 10 * TB, 500 * 2**20),
        ("0b", 10 * TB, 0),
    ],
)
def test_free_space_kept(text: str, total: int, kept: int) -> None:
    assert parse_flood_stage(text).required_free(total) == kept


@pytest.mark.parametrize("text", ["101%", "1.5", "lots", "-1%"])
def test_bad_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_flood_stage(text)


def test_room_on_this_disk(tmp_path: Path) -> None:
    room = disk_room(tmp_path, parse_flood_stage("0b"))
    assert room.floor == 0 and room.above_floor == room.free > 0
    assert disk_room(tmp_path, parse_flood_stage("1pb")).above_floor < 0
