"""One migrated database per backend; each test gets a started app on a clean database.

SQLite always runs. PostgreSQL and MariaDB run when their server answers at
CATALOG_TEST_POSTGRESQL_URL / CATALOG_TEST_MARIADB_URL (the local servers by default);
otherwise their tests are skipped with the reason, and with CI=true they fail instead.
Every PostgreSQL test runs twice: directly, and through a real PgBouncer in transaction
mode that the fixtures start in front of the same server (Debian's `pgbouncer`). Every
MariaDB test runs twice: on the shared server, and on a node of a real 3-node Galera
cluster that the fixtures start (mariadbd with galera-4).
The test databases are emptied: do not point these variables at data you want to keep.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.main import create_app
from catalog.models import Base, migrations
from tests.galera import ThrowawayGalera
from tests.helpers import (  # noqa: F401 - TEST_APPLICATION_NAME: imported from here too
    TEST_APPLICATION_NAME,
    backend_params,
    bearer,
    create_user,
    settings_for,
    started,
)
from tests.throwaway import ThrowawayPgBouncer

SERVER_URLS = {
    "postgresql": os.environ.get(
        "CATALOG_TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "CATALOG_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/test"
    ),
}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Backend:
    name: str  # the dialect: sqlite, postgresql or mariadb
    url: str
    # Through a transaction-mode pooler (PgBouncer), whose admin console is at this URL.
    pooler_admin_url: str | None = None

    @property
    def through_pooler(self) -> bool:
        return self.pooler_admin_url is not None

    def env(self) -> dict[str, str]:
        """The environment that points a `catalog` process at this database."""
        values = {"CATALOG_DATABASE_URL": self.url}
        if self.pooler_admin_url is not None:
            values.update(
                CATALOG_DATABASE_POOLER="transaction",
                CATALOG_POOLER_ADMIN_URL=self.pooler_admin_url,
            )
        return values

    def settings(self, **overrides: object) -> Settings:
        if self.pooler_admin_url is not None:
            overrides = {
                "database_pooler": "transaction",
                "pooler_admin_url": self.pooler_admin_url,
                **overrides,
            }
        return settings_for(self.url, **overrides)


_reachability: dict[str, str | None] = {}


def _unreachable_reason(name: str, url: str) -> str | None:
    """None if the server answers, else why not (checked once per session)."""
    if name not in _reachability:

        async def probe() -> None:
            engine = create_engine(Settings(database_url=url, connect_timeout=3), pooled=False)
            try:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            finally:
                await engine.dispose()

        try:
            asyncio.run(asyncio.wait_for(probe(), timeout=10))
            _reachability[name] = None
        except Exception as exc:
            _reachability[name] = f"{name} not reachable at {url}: {type(exc).__name__}: {exc}"
    return _reachability[name]


def pytest_report_header() -> list[str]:
    lines = []
    for name, url in SERVER_URLS.items():
        reason = _unreachable_reason(name, url)
        state = (
            "reachable"
            if reason is None
            else "NOT reachable, its tests will " + ("FAIL (CI=true)" if IN_CI else "be skipped")
        )
        lines.append(f"catalog backend {name}: {url} {state}")
    return lines


async def _reset_schema(url: str) -> None:
    """Drop every table of ours, then build the schema with the migrations."""
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            if connection.dialect.name == "sqlite":  # the FTS5 table of migration 0004
                await connection.execute(text("DROP TABLE IF EXISTS products_fts"))
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


def _require_server(name: str) -> str:
    url = SERVER_URLS[name]
    reason = _unreachable_reason(name, url)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: every backend must run)", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session", params=backend_params("sqlite", "postgresql", "mariadb"))
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """A migrated database on each backend, built once per test session."""
    if request.param in ("pgbouncer", "galera"):
        return request.getfixturevalue(f"{request.param}_backend")  # type: ignore[no-any-return]
    return migrated_backend(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def galera_cluster() -> Iterator[ThrowawayGalera]:
    """A real 3-node MariaDB Galera cluster, started for this test session (about 10 s)."""
    _require_server("mariadb")  # CI=true: Galera runs where MariaDB must
    cluster = ThrowawayGalera()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def galera_backend(galera_cluster: ThrowawayGalera) -> Backend:
    """The first node of the Galera cluster, migrated: the node that takes the writes."""
    url = galera_cluster.urls[0]
    asyncio.run(_reset_schema(url))
    return Backend("mariadb", url)


@pytest.fixture(scope="session")
def pgbouncer_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """PostgreSQL's test database through a real PgBouncer in transaction mode, started
    for this test session, with a server pool (4) smaller than an app's pool (10)."""
    direct = migrated_backend("postgresql", tmp_path_factory)
    port = make_url(direct.url).port or 5432
    bouncer = ThrowawayPgBouncer(port, pool_size=4)
    bouncer.start()
    try:
        database = make_url(direct.url).database or "postgres"
        yield Backend("postgresql", bouncer.url_for(database), bouncer.admin_url)
    finally:
        bouncer.stop()


def migrated_backend(name: str, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """A freshly migrated database: a new SQLite file, or the server's test database."""
    if name == "sqlite":
        # catalog's own driver by default; CI runs the SQLite tests again with aiosqlite.
        driver = os.environ.get("CATALOG_TEST_SQLITE_DRIVER", "inline")
        url = f"sqlite+{driver}:///{tmp_path_factory.mktemp('sqlite') / 'catalog.db'}"
    else:
        url = _require_server(name)
    asyncio.run(_reset_schema(url))
    return Backend(name, url)


async def clean_tables(engine: AsyncEngine) -> None:
    """Empty every table, so that each test starts from an empty catalog."""
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """A started app (engine created, schema checked) on a clean database."""
    application = create_app(settings)
    async with started(application):
        await clean_tables(application.state.engine)
        yield application


@pytest.fixture
def engine(app: FastAPI) -> AsyncEngine:
    """The started app's engine and pool."""
    return app.state.engine  # type: ignore[no-any-return]


@pytest.fixture
async def admin_id(app: FastAPI) -> int:
    """An admin account in the clean database."""
    return await create_user(app.state.engine, "admin@example.com", admin=True)


@pytest.fixture
async def client(app: FastAPI, admin_id: int) -> AsyncIterator[httpx.AsyncClient]:
    """Real HTTP requests through the ASGI app, which owns a real pool; signed in as an
    admin (send other headers per request to be someone else, or no one)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://catalog.test",
        headers=bearer(admin_id, app.state.settings),
    ) as http:
        yield http
