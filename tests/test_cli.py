"""The `catalog` command: migrations, seeding, serving."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from catalog.cli import app
from catalog.config import get_settings
from catalog.products.seed import demo_products


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_db_upgrade_then_current(sqlite_url: str) -> None:
    code, output = run("db", "current")
    assert code == 1
    assert "catalog db upgrade" in output

    code, output = run("db", "upgrade")
    assert code == 0, output
    assert "is at revision" in output

    code, output = run("db", "current")
    assert code == 0
    assert "up to date" in output


def test_seed_fills_an_empty_catalog_once(sqlite_url: str) -> None:
    run("db", "upgrade")

    code, output = run("seed", "--products", "250")
    assert code == 0, output
    assert "added 250 products" in output

    code, output = run("seed", "--products", "250", "--if-empty")
    assert code == 0
    assert "added 0 products" in output

    code, output = run("seed", "--products", "10")
    assert code == 1
    assert "already has 250 products" in output


def test_demo_data_is_deterministic() -> None:
    first = list(demo_products(300, seed=7))
    assert first == list(demo_products(300, seed=7))
    assert first != list(demo_products(300, seed=8))
    assert len({row["sku"] for row in first}) == 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_a_real_server_and_stops_cleanly(sqlite_url: str) -> None:
    run("db", "upgrade")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "catalog", "serve", "--port", str(port)],
        env={**os.environ, "CATALOG_DATABASE_URL": sqlite_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert response.status_code == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    # uvicorn shuts down gracefully, then re-raises SIGTERM to report how it ended.
    assert server.returncode in (0, -15), output
    assert "Application shutdown complete" in output


def test_serve_refuses_an_unmigrated_database(sqlite_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "catalog", "serve", "--port", str(_free_port())],
        env={**os.environ, "CATALOG_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "catalog db upgrade" in result.stdout + result.stderr
