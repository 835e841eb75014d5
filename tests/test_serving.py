"""`catalog serve`'s bounds on a request's head (catalog/serving.py), on a real server
over raw sockets: a head too large is refused with 431 before it is read whole, and a
client that sends its head slowly, or nothing, or stops in a body, is let go."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Server, catalog_server

MAX_HEADER_BYTES = 8192


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serving")
    driver = os.environ.get("CATALOG_TEST_SQLITE_DRIVER", "inline")
    env = {
        "CATALOG_DATABASE_URL": f"sqlite+{driver}:///{folder / 'serving.db'}",
        "CATALOG_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "CATALOG_CLIENT_TIMEOUT": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "catalog", "db", "upgrade"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    with catalog_server(env, folder / "serve.log") as running:
        yield running


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=60)


def _read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _problem(answer: bytes) -> tuple[str, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].decode()
    assert b"content-type: application/problem+json" in head.lower(), answer
    return status_line, json.loads(body)


def _memory_kib(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_a_head_over_the_bound_is_a_431_and_the_connection_ends(server: Server) -> None:
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEADER_BYTES
    with _connect(server) as connection:
        connection.sendall(head + b"\r\n\r\n")
        status_line, problem = _problem(_read_all(connection))
    assert status_line == "HTTP/1.1 431 Request Header Fields Too Large"
    assert problem["type"] == "/problems/request-header-fields-too-large"
    assert problem["status"] == 431
    assert "8,192 bytes" in str(problem["detail"])
    # Under the bound, the same request is served.
    fits = {"X-Big": "a" * (MAX_HEADER_BYTES - 200)}
    assert httpx.get(f"{server.base_url}/health/live", headers=fits).status_code == 200


def test_a_huge_header_is_never_read_whole(server: Server) -> None:
    before = _memory_kib(server)
    sent = 0
    with _connect(server) as connection:
        connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        try:
            while sent < 200 * 2**20:
                connection.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what this test waits for
    assert sent < 200 * 2**20, "the server read a 200 MiB header"
    # What it read of it is a few socket reads at most, not the megabytes sent.
    assert _memory_kib(server) - before < 20 * 1024
    assert "refused with 431" in server.output()
    assert httpx.get(f"{server.base_url}/health/live").status_code == 200


def test_a_head_sent_too_slowly_is_a_408_and_the_connection_ends(server: Server) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # and no more
        status_line, problem = _problem(_read_all(connection))
    assert status_line == "HTTP/1.1 408 Request Timeout"
    assert problem["type"] == "/problems/request-timeout"


def test_a_silent_connection_is_closed(server: Server) -> None:
    with _connect(server) as connection:
        assert _read_all(connection) == b""  # closed by the server, nothing said


def test_a_body_that_stops_arriving_ends_the_connection(server: Server) -> None:
    with _connect(server) as connection:
        connection.sendall(
            b"POST /auth/token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"username=a"
        )
        answer = _read_all(connection)
    # Closed; whatever the app answered to a body cut short, it is no server error.
    assert not answer.startswith(b"HTTP/1.1 5"), answer
