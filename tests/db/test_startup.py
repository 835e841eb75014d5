"""Start-up checks: the connection budget, and `catalog doctor` that prints them."""

import asyncio

import pytest
from typer.testing import CliRunner

from catalog.cli import app as cli
from catalog.config import get_settings
from catalog.db.engine import create_engine
from catalog.main import create_app
from catalog.startup import StartupCheckError
from tests.conftest import SERVER_URLS, Backend
from tests.helpers import only_on, started


@only_on("postgresql", "mariadb")
async def test_start_is_refused_when_workers_would_exceed_max_connections(backend: Backend) -> None:
    settings = backend.settings(workers=40, pool_size=5, max_overflow=5)

    with pytest.raises(StartupCheckError) as refused:
        async with started(create_app(settings)):
            pass

    message = str(refused.value)
    assert "40 x (5 + 5) = 400 connections" in message
    assert "max_connections" in message
    assert "CATALOG_POOL_SIZE" in message


@only_on("postgresql", "mariadb")
async def test_the_budget_check_can_be_overridden(backend: Backend) -> None:
    settings = backend.settings(workers=40, connection_budget_check=False)
    async with started(create_app(settings)):
        pass


async def test_a_budget_within_the_limit_starts(backend: Backend) -> None:
    async with started(create_app(backend.settings(workers=4))):
        pass


@pytest.fixture
def database_env(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Backend:
    for name, value in backend.env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield backend  # type: ignore[misc]
    get_settings.cache_clear()


def test_doctor_prints_settings_version_and_budget(database_env: Backend) -> None:
    result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "pool_size" in result.output
    assert "ok: workers x (pool_size + max_overflow) = 1 x (10 + 0)" in result.output
    expected_server = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}
    assert expected_server[database_env.name] in result.output


@only_on("sqlite")
def test_doctor_says_which_key_signs_where_limits_count_and_who_reads_metrics(
    database_env: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_RATE_LIMIT_STORAGE_URL", "redis://:hunter2@127.0.0.1:6379/0")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "the key file" in result.output
    assert "redis://:***@127.0.0.1:6379/0" in result.output
    assert "hunter2" not in result.output
    assert "closed (no CATALOG_METRICS_TOKEN)" in result.output


@only_on("postgresql", "mariadb")
def test_doctor_fails_over_budget(database_env: Backend) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--workers", "50"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "OVER" in result.output


def run_sql(backend: Backend, sql: str) -> None:
    """One statement from outside the app (the doctor tests are not async)."""

    async def run() -> None:
        engine = create_engine(backend.settings(), pooled=False)
        try:
            async with engine.begin() as connection:
                await connection.exec_driver_sql(sql)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_doctor_reports_an_index_the_migrations_made_and_the_database_lacks(
    database_env: Backend,
) -> None:
    # What a bulk load killed between dropping the indexes and building them leaves.
    drop = {
        "sqlite": "DROP INDEX ix_products_price_id",
        "postgresql": "DROP INDEX ix_products_price_id",
        "mariadb": "DROP INDEX ix_products_price_id ON products",
    }[database_env.name]
    restore = "CREATE INDEX ix_products_price_id ON products (price, id)"
    run_sql(database_env, drop)
    try:
        result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "300"})
    finally:
        run_sql(database_env, restore)
    assert result.exit_code == 1, result.output
    assert "MISSING: index ix_products_price_id on products" in result.output
    assert "all present" in CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "300"}).output


@only_on("mariadb")
async def test_a_mariadb_replica_without_galera_is_refused_at_start(backend: Backend) -> None:
    # Binlog replication gives no position a consistency token could name: every write
    # answered "Consistency-Token: None", and the client's next reads were 400 for 7 s.
    if backend.url != SERVER_URLS["mariadb"]:
        pytest.skip("a Galera node gives the positions a replica needs")
    settings = backend.settings(read_database_url=backend.settings().database_url)
    with pytest.raises(StartupCheckError) as refused:
        async with started(create_app(settings)):
            pass
    assert "needs a Galera cluster" in str(refused.value)
