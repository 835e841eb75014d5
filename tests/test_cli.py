"""The `catalog` command: migrations, seeding, serving."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import catalog
from catalog.cli import app
from catalog.config import get_settings
from catalog.products.seed import demo_products
from tests.servers import catalog_server, free_port


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # The driver of the run: catalog's own by default, aiosqlite in CI's second run.
    driver = os.environ.get("CATALOG_TEST_SQLITE_DRIVER", "inline")
    url = f"sqlite+{driver}:///{tmp_path / 'cli.db'}"
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


def test_serve_runs_a_real_server_and_stops_cleanly(sqlite_url: str, tmp_path: Path) -> None:
    run("db", "upgrade")
    with catalog_server({"CATALOG_DATABASE_URL": sqlite_url}, tmp_path / "serve.log") as server:
        response = httpx.get(f"{server.base_url}/health/ready", timeout=5)
        assert response.status_code == 200
    # A graceful shutdown on SIGTERM exits 0 (uvicorn alone would re-raise the signal).
    assert server.process.returncode == 0, server.output()
    assert "Application shutdown complete" in server.output()


def test_serve_refuses_an_unmigrated_database(sqlite_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "catalog", "serve", "--port", str(free_port())],
        env={**os.environ, "CATALOG_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "catalog db upgrade" in result.stdout + result.stderr


def test_user_create_reads_the_password_from_stdin(sqlite_url: str) -> None:
    run("db", "upgrade")

    result = CliRunner().invoke(
        app, ["user", "create", "Root@Example.com", "--admin"], input="a long password\n"
    )
    assert result.exit_code == 0, result.output
    assert "created admin root@example.com" in result.output

    again = CliRunner().invoke(
        app, ["user", "create", "root@example.com"], input="another password\n"
    )
    assert again.exit_code == 1
    assert "already exists" in again.output

    short = CliRunner().invoke(app, ["user", "create", "x@example.com"], input="short\n")
    assert short.exit_code == 2
    assert "password" in short.output


def test_export_and_import_commands(sqlite_url: str, tmp_path: Path) -> None:
    run("db", "upgrade")
    run("seed", "--products", "120")
    exported = tmp_path / "all.ndjson"

    code, output = run("export", str(exported))
    assert code == 0, output
    assert "120 products written" in output
    assert len(exported.read_text().splitlines()) == 120

    code, output = run("import", str(exported))
    assert code == 0, output
    assert "120 products written, 0 bad rows" in output

    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,price\nOK-1,Fine,1.00\nBAD-1,,2.00\n")
    code, output = run("import", str(bad))
    assert code == 1
    assert "line 3: name" in output
    assert "0 products written, 1 bad rows" in output

    code, output = run("import", str(tmp_path / "all.txt"))
    assert code == 2


def test_settings_that_cannot_be_used_are_one_line_not_a_traceback(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_ENVIRONMENT", "production")
    monkeypatch.setenv("CATALOG_JWT_SECRET_FILE", str(tmp_path / "no-key"))
    get_settings.cache_clear()

    code, output = run("db", "current")

    assert code == 2
    assert "needs CATALOG_JWT_SECRET" in output
    assert "Traceback" not in output


def test_version_is_printed(sqlite_url: str) -> None:
    code, output = run("--version")
    assert code == 0
    assert output.strip() == f"catalog {catalog.__version__}"


def test_an_unknown_catalog_variable_is_named_not_ignored_in_silence(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_POOL_SIZ", "3")  # a typo of CATALOG_POOL_SIZE
    code, output = run("db", "upgrade")
    assert code == 0, output
    assert "CATALOG_POOL_SIZ is not a catalog setting" in output


def test_a_sync_driver_url_is_one_short_message(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql+psycopg2://u@db.example/x")
    get_settings.cache_clear()
    code, output = run("db", "current")
    assert code == 2
    assert "not an asyncio driver" in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3


def test_data_commands_on_an_unmigrated_database_say_what_to_run_and_print_no_secret(
    sqlite_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text('{"sku": "A-1", "name": "n", "price": "1.00"}\n')
    for args, stdin in (
        (["seed", "--products", "5"], None),
        (["import", str(source)], None),
        (["export", str(tmp_path / "out.csv")], None),
        (["user", "create", "new@example.com"], "correct horse battery\n"),
    ):
        result = CliRunner().invoke(app, args, input=stdin)
        assert result.exit_code == 1, (args, result.output)
        assert "catalog db upgrade" in result.output
        assert "Traceback" not in result.output
        assert "argon2" not in result.output
        assert len(result.output.strip().splitlines()) <= 4, result.output


def test_database_errors_are_one_line_without_values(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A directory where the database file should be: SQLite cannot open it. Not on
    # aiosqlite: its failed connect leaves its thread to report to the event loop after
    # asyncio.run has closed it, "Event loop is closed" (omnilib/aiosqlite#241).
    monkeypatch.setenv("CATALOG_DATABASE_URL", f"sqlite+inline:///{tmp_path}")
    get_settings.cache_clear()
    code, output = run("seed", "--products", "5")
    assert code == 2
    assert "cannot use" in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) <= 3


def test_import_and_export_show_a_bar_that_reaches_the_end(sqlite_url: str, tmp_path: Path) -> None:
    run("db", "upgrade")
    run("seed", "--products", "2500")
    exported = CliRunner().invoke(app, ["export", str(tmp_path / "all.ndjson")])
    imported = CliRunner().invoke(app, ["import", str(tmp_path / "all.ndjson")])
    for result in (exported, imported):
        assert result.exit_code == 0, result.output
        assert "100%" in result.output
        assert "2,500 rows" in result.output
        assert "left" in result.output


def test_the_installed_cli_carries_no_command_of_a_source_checkout(sqlite_url: str) -> None:
    # `catalog bench` ran bench/suite.py, which needs the dev extras: `make bench` does.
    code, output = run("bench", "--help")
    assert code == 2
    assert "No such command" in output
