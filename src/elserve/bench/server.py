"""A real `elserve serve` for the end-to-end rows: its own data directory, the model planted in
its cache (nothing to download), a free loopback port; and its memory, read from /proc."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from elserve.models.cache import MARKER
from elserve.models.catalogue import ELSER_V2_MODEL, Catalogue

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plant_model(model_dir: Path, data_dir: Path, model_id: str = ELSER_V2_MODEL) -> Path:
    """Install `model_dir` as `model_id` in `data_dir`'s model cache, as a finished download
    would leave it (files linked, not copied), so the server serves exactly this model."""
    spec = Catalogue().get(model_id)
    target = data_dir / "models" / spec.cache_key
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        (target / name).symlink_to((model_dir / name).resolve())
    record = {
        "installed_for": model_id,
        "source": f"file:{model_dir.resolve()}",
        "sha256": None,
        "installed_at": int(time.time() * 1000),
        "files": sorted(MODEL_FILES),
        "planted_by": "elserve bench",
    }
    (target / MARKER).write_text(json.dumps(record, indent=2) + "\n")
    return target


class BenchServer:
    """`elserve serve` in a subprocess over a temporary data directory; a context manager."""

    def __init__(
        self,
        model_dir: Path,
        password: str,
        log_path: Path,
        start_timeout: float = 120.0,
        processors: int | None = None,
        precision: str = "exact",
    ) -> None:
        """`processors`: the server's `--processors` (enough for the endpoints measured, even past
        the machine's); `precision`: its `--precision`."""
        self.precision = precision
        self.model_dir = model_dir
        self.processors = processors
        self.password = password
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.port = free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BenchServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="elserve-bench-")
        data_dir = Path(self._tmp.name) / "data"
        plant_model(self.model_dir, data_dir)
        env = dict(os.environ, ELASTIC_PASSWORD=self.password)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        command = [sys.executable, "-m", "elserve.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir), "--log-level", "warning", "--precision", self.precision]
        if self.processors is not None:
            command += ["--processors", str(self.processors)]
        # Its own session: stopping it reaches its workers too, never anything of ours.
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"elserve serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                httpx.get(self.url, auth=("elastic", self.password), timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)  # a process start has no event to wait on
        raise RuntimeError(f"elserve serve did not answer within {self.start_timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def peak_rss_bytes(self) -> int | None:
        return None if self.process is None else tree_peak_rss_bytes(self.process.pid)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def tree_peak_rss_bytes(pid: int) -> int | None:
    """Sum of the peak resident sizes (VmHWM) of `pid` and every process below it: the server
    and its allocation workers. Each peak is its own, so the sum is an upper bound."""
    total, found = 0, False
    for process in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
                found = True
    return total if found else None


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent id is the 2nd field after the parenthesised command name.
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found
