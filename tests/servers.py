"""A real `catalog serve` in a subprocess, for tests that need real HTTP and a real process."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path
    # What was added to its environment (its CATALOG_DATABASE_URL, say).
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def catalog_server(
    env: dict[str, str], log: Path, *, workers: int = 1, ready_within: float = 30
) -> Iterator[Server]:
    """Start `catalog serve` with `env` added to the environment; stop it with SIGTERM.
    Its /metrics and /health/pool are open (closed by default), for the tests to read."""
    port = free_port()
    command = [sys.executable, "-m", "catalog", "serve", "--port", str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env={**os.environ, "CATALOG_METRICS_PUBLIC": "true", **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, f"http://127.0.0.1:{port}", process, log, env)
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                httpx.get(f"{server.base_url}/health/live", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert process.poll() is None, server.output()
                assert time.monotonic() < deadline, f"server not up:\n{server.output()}"
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
