"""An upload's last step: its parts assembled into the Elastic layout, checked in a child process,
committed into the model cache under the sha256 of its files by one rename.

The assembly is made inside the upload's own staging directory (`.assembling-<hex>/`), so whatever a
crash leaves of it goes with that directory (on DELETE, on completion, at the next start).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from elserve.models.cache import MARKER
from elserve.models.registry import RegisteredModel
from elserve.operations.upload_check import CheckLimits, RunningChecks, run_check
from elserve.runtime.layout import ELASTIC_CONFIG, ELASTIC_MODEL, ELASTIC_VOCAB
from elserve.runtime.memory import SHAPES_FILE

ASSEMBLY_PREFIX = ".assembling-"
# What earlier versions assembled in the model cache's root: left only by a crash, removed at start.
LEGACY_PREFIXES = (".upload-",)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def install(
    model: RegisteredModel,
    staging: Path,
    parts: list[Path],
    cache_root: Path,
    limits: CheckLimits,
    running: RunningChecks,
    length: int,
) -> str:
    """Assemble `parts` and the staged vocabulary with the model's configuration, check the result
    (`upload_check.CheckFailed` when it fails), and install it; its cache key."""
    scratch = staging / f"{ASSEMBLY_PREFIX}{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        digest = hashlib.sha256()
        with open(scratch / ELASTIC_MODEL, "wb") as out:
            for part in parts:
                data = part.read_bytes()
                out.write(data)
                digest.update(data)
            out.flush()
            os.fsync(out.fileno())
        # The configuration without the id: the same model under two ids is one copy.
        runtime_config = {k: v for k, v in model.config.items() if k != "model_id"}
        files = {
            ELASTIC_VOCAB: (staging / ELASTIC_VOCAB).read_bytes(),
            ELASTIC_CONFIG: json.dumps(runtime_config, indent=2, sort_keys=True).encode(),
        }
        for name, data in files.items():
            _write_synced(scratch / name, data)
            digest.update(name.encode() + b"\0" + data)
        key = digest.hexdigest()
        final = cache_root / key
        if (final / MARKER).is_file():
            return key  # the same files are installed (and were checked) already
        shapes = run_check(scratch, limits, length, running, model.model_id)
        _write_synced(scratch / SHAPES_FILE, json.dumps(shapes).encode())
        record = {
            "installed_for": model.model_id,
            "source": "upload",
            "sha256": key,
            "installed_at": int(time.time() * 1000),
            "files": sorted([ELASTIC_MODEL, *files]),
        }
        _write_synced(scratch / MARKER, json.dumps(record, indent=2).encode())
        if final.exists():
            shutil.rmtree(final)  # without a marker: not an install of ours
        cache_root.mkdir(parents=True, exist_ok=True)
        os.rename(scratch, final)
        return key
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
