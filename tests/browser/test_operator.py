"""The operator page in Chromium tells an outage as it happens, then the recovery, on a
real `catalog serve`: a pool of one exhausted behind a SQLite write lock, and a restart of
a PostgreSQL server of the test's own."""

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser import async_api
from tests.browser.conftest import DESKTOP, _catalog
from tests.servers import Server, catalog_server
from tests.throwaway import ThrowawayPostgres

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.asyncio(loop_scope="session")
expect = async_api().expect


@pytest.fixture
def small_pool(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A `catalog serve` on SQLite whose pool has one connection and waits 0.3 s for it
    (its operator endpoints are open, as catalog_server opens them)."""
    database = tmp_path / "catalog.db"
    env = {
        "CATALOG_DATABASE_URL": f"sqlite+inline:///{database}",
        "CATALOG_POOL_SIZE": "1",
        "CATALOG_MAX_OVERFLOW": "0",
        "CATALOG_POOL_TIMEOUT": "0.3",
        "CATALOG_SQLITE_BUSY_TIMEOUT": "20",
    }
    _catalog("db", "upgrade", env=env)
    _catalog("seed", "--products", "10", env=env)
    with catalog_server(env, tmp_path / "serve.log") as server:
        yield server, database


async def test_the_operator_page_shows_a_503_burst_and_the_recovery(
    chromium: "Browser", small_pool: tuple[Server, Path]
) -> None:
    server, database = small_pool
    context = await chromium.new_context(base_url=server.base_url, viewport=DESKTOP)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    state = page.locator("#state")
    try:
        await page.goto("/operator")
        await expect(state).to_have_text("Serving normally: no 503 in the last five minutes.")

        # Another process takes the database's write lock; a sign-up then holds the
        # pool's only connection while it waits, and every read times out on the pool.
        lock = sqlite3.connect(database, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            writer = asyncio.create_task(
                client.post(
                    "/users", json={"email": "held@example.com", "password": "dinosaurs rule"}
                )
            )
            await asyncio.sleep(1)
            reads = await asyncio.gather(*(client.get("/products/1") for _ in range(8)))
            assert {response.status_code for response in reads} == {503}

            await expect(state).to_contain_text("Refusing requests")
            refused = page.locator('figure[data-series="unavailable"]')
            await expect(refused).to_have_class("chart alarm")
            totals = page.locator('[data-total="unavailable"]')
            await expect(totals).to_have_text("8")

            lock.execute("ROLLBACK")
            lock.close()
            assert (await writer).status_code == 201
            assert (await client.get("/products/1")).status_code == 200

        await expect(state).to_contain_text("Recovered: the last 503 was", timeout=30_000)
        points = await refused.locator("polyline").get_attribute("points")
        assert points
        assert len(points.split()) > 10
    finally:
        await context.close()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[Server, ThrowawayPostgres]]:
    """A `catalog serve` on a PostgreSQL server of the test's own, which the test stops
    and starts again as an operator's restart would."""
    database = ThrowawayPostgres(tmp_path)
    try:
        database.start()
        env = {
            "CATALOG_DATABASE_URL": database.url,
            "CATALOG_CONNECT_TIMEOUT": "1",
            "CATALOG_POOL_TIMEOUT": "2",
        }
        _catalog("db", "upgrade", env=env)
        _catalog("seed", "--products", "10", env=env)
        with catalog_server(env, tmp_path / "serve.log") as server:
            yield server, database
    finally:
        database.stop()


@pytest.mark.postgresql
async def test_the_operator_page_tells_a_database_restart(
    chromium: "Browser", restartable: tuple[Server, ThrowawayPostgres]
) -> None:
    server, database = restartable
    context = await chromium.new_context(base_url=server.base_url, viewport=DESKTOP)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    state = page.locator("#state")
    try:
        await page.goto("/operator")
        await expect(state).to_have_text("Serving normally: no 503 in the last five minutes.")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            database.crash()
            down = [await client.get("/products/1") for _ in range(3)]
            assert {response.status_code for response in down} == {503}
            # The page reads no database: it keeps drawing, and says what happens.
            await expect(state).to_contain_text("Refusing requests")
            await expect(page.locator('[data-total="unavailable"]')).to_have_text("3")

            database.start()
            for _ in range(50):
                if (await client.get("/products/1")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert (await client.get("/products/1")).status_code == 200
        await expect(state).to_contain_text("Recovered: the last 503 was", timeout=30_000)
    finally:
        await context.close()
