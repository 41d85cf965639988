"""How full the data directory's disk may get: Elasticsearch's flood-stage watermark.

`cluster.routing.allocation.disk.watermark.flood_stage` (`DiskThresholdSettings.java`): a used
percentage (`95%`, the default) or ratio (`0.95`), or an absolute value meaning the free bytes to
keep (`500mb`). With the default the free space kept is capped by
`cluster.routing.allocation.disk.watermark.flood_stage.max_headroom` (100gb unless the watermark is
set), so a large disk is not held back by 5% of itself. Past the watermark Elasticsearch blocks writes to the index
(`read_only_allow_delete`: deletes still go through).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FLOOD_STAGE = "95%"
MAX_HEADROOM_BYTES = 100 * 2**30
_RATIO = re.compile(r"^(\d+(?:\.\d+)?)(%?)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)$")
_UNIT_BYTES = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}


@dataclass(frozen=True)
class FloodStage:
    """One of the two: the highest used ratio, or the free bytes to keep."""

    used_ratio: float | None = None
    free_bytes: int | None = None
    max_headroom: int | None = None  # with a ratio: the most it keeps free

    def required_free(self, total: int) -> int:
        if self.free_bytes is not None:
            return self.free_bytes
        assert self.used_ratio is not None
        kept = round(total * (1.0 - self.used_ratio))
        return kept if self.max_headroom is None else min(kept, self.max_headroom)


def parse_flood_stage(text: str) -> FloodStage:
    """`95%`, `0.95` or `500mb`; ValueError with the reason otherwise."""
    value = text.strip().lower()
    ratio = _RATIO.match(value)
    if ratio is not None:
        number = float(ratio.group(1))
        used = number / 100.0 if ratio.group(2) else number
        if not 0.0 <= used <= 1.0:
            raise ValueError(f"[{text}] is not a used percentage (0-100%) or ratio (0-1.0)")
        headroom = MAX_HEADROOM_BYTES if value == DEFAULT_FLOOD_STAGE else None
        return FloodStage(used_ratio=used, max_headroom=headroom)
    size = _SIZE.match(value)
    if size is None:
        raise ValueError(f"[{text}] is neither a percentage (95%), a ratio (0.95) nor a size (500mb)")
    return FloodStage(free_bytes=int(float(size.group(1)) * _UNIT_BYTES[size.group(2)]))


@dataclass(frozen=True)
class DiskRoom:
    free: int  # bytes free for this user
    floor: int  # bytes the watermark keeps free

    @property
    def above_floor(self) -> int:
        """What may still be written before the watermark is reached (negative: past it)."""
        return self.free - self.floor


def disk_room(path: Path, flood_stage: FloodStage) -> DiskRoom:
    """The free space of the filesystem holding `path` (which exists) against the watermark."""
    usage = shutil.disk_usage(path)
    return DiskRoom(usage.free, flood_stage.required_free(usage.total))
