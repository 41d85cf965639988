"""A real `elserve serve` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

PASSWORD = "test-password-123"


# Every server a test has started, so that one a failing test left running can be stopped after it
# (tests/conftest.py): nothing may outlive the tests.
_STARTED: list[Server] = []


def running_servers() -> list[Server]:
    """The servers started by the tests that are still running."""
    return [s for s in _STARTED if s.process is not None and s.process.poll() is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        password: str | None = PASSWORD,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.extra_args = args or []
        self.extra_env = env or {}
        self.extra_args = args or []
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"

    @property
    def url(self) -> str:
        scheme = "https" if "--ssl-certfile" in self.extra_args else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> Server:
        """Start it and wait until it answers (3 s on a loaded 2-core machine; the bound only guards against a
        hang: a server that exits is seen at once)."""
        env = {k: v for k, v in os.environ.items() if k != "ELASTIC_PASSWORD"} | self.extra_env
        if self.password is not None:
            env["ELASTIC_PASSWORD"] = self.password
        elserve = Path(sys.executable).with_name("elserve")
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # the server's log while it runs; stop() closes it
        self.process = subprocess.Popen(
            [
                str(elserve),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        _STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"elserve exited with {self.process.returncode}:\n{self.log()}")
            try:
                httpx.head(self.url, timeout=1.0, verify=False)  # a TLS test server's certificate is self-signed
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"elserve did not answer within {timeout}s:\n{self.log()}")

    def __enter__(self) -> Server:
        """`with Server(...).start() as server:` stops it when the block ends, however it ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """The processes below the server: its allocation workers (children of its fork server) and helpers."""
        assert self.process is not None
        pids: list[int] = []
        stack = [self.process.pid]
        while stack:
            try:
                tasks = list(Path(f"/proc/{stack.pop()}/task").iterdir())
            except OSError:  # exited meanwhile
                continue
            for task in tasks:
                try:
                    children = [int(p) for p in (task / "children").read_text().split()]
                except OSError:
                    continue
                pids.extend(children)
                stack.extend(children)
        return pids

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 300.0) -> int:
        """Stop the server; its exit status (uvicorn re-raises SIGTERM after a graceful shutdown: -15).
        Killed after `timeout` (a bound against a hang: a graceful shutdown may drain for 30 s, then stops
        every worker; the tests that check the status would see -9)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def wait_exit(self, timeout: float = 300.0) -> int:
        """Wait for a server already signalled to exit (a second SIGTERM would force it out)."""
        assert self.process is not None
        self.process.wait(timeout)
        self._log.close()
        return self.process.returncode

    def kill9(self) -> None:
        """kill -9 of the server alone (its workers die with it: PR_SET_PDEATHSIG)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self._log.close()


@contextmanager
def started_together(servers: list[Server]) -> Iterator[list[Server]]:
    """Every server started at once (one thread each), and those that started stopped on the way out."""
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(Server.start, servers))
        yield servers
    finally:
        for server in servers:
            if server.process is not None:
                server.stop()
