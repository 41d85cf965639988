"""Why a model's parent or an allocation's worker could not start, told to the server.

A process that fails while starting sends `("start_failed", reason, details)` instead of its
`ready` message: `reason` is the exception and the last frames of its traceback, for the
deployment's `reason` in `_stats` (file names only: no server path reaches a client); `details` is
the whole traceback, for the server's log. A worker that exits without a word (killed, or crashed
in native code) is told apart by the server from its socket closing (allocation.py).
"""

from __future__ import annotations

import os
import traceback

# How many of the innermost frames the reason names: enough to see where it failed, short enough
# for one line of `_stats`.
REASON_FRAMES = 3


def describe(exc: BaseException) -> tuple[str, str]:
    """`(reason, details)` of an exception raised while starting (see the module doc)."""
    frames = traceback.extract_tb(exc.__traceback__)[-REASON_FRAMES:]
    where = " < ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in reversed(frames))
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    reason = f"{message} (at {where})" if where else message
    details = "".join(traceback.format_exception(exc)).rstrip()
    return reason, details


def start_failed(exc: BaseException) -> tuple[str, str, str]:
    """The message a process that could not start sends in place of `ready`."""
    return ("start_failed", *describe(exc))
