"""The database goes away (crash, restart, freeze, a killed connection): requests get 503
quickly, nothing hangs, and the service recovers by itself."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from catalog.config import Settings
from catalog.db.engine import create_engine
from tests.conftest import TEST_APPLICATION_NAME, Backend
from tests.helpers import (
    all_checked_in,
    assert_problem,
    migrate,
    only_on,
    product_payload,
    serving,
    settings_for,
    until,
)
from tests.throwaway import PooledPostgres, ThrowawayMariaDB, ThrowawayPostgres

# Slack for a loaded 2-core machine: far below anything that would count as a hang.
MARGIN = 2.0


Server = ThrowawayPostgres | ThrowawayMariaDB | PooledPostgres


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("pgbouncer", marks=[pytest.mark.postgresql, pytest.mark.pgbouncer]),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A database server of this test's own, migrated (behind a PgBouncer of its own
    for `pgbouncer`, which gives up on a waiting client or an unreachable server after
    1 s, as an operator who wants 503s fast configures it: docs/scale-out.md)."""
    instance: Server
    if request.param == "pgbouncer":
        instance = PooledPostgres(query_wait_timeout=1, server_connect_timeout=1)
    elif request.param == "postgresql":
        instance = ThrowawayPostgres(tmp_path / request.param)
    else:
        instance = ThrowawayMariaDB(tmp_path / request.param)
    instance.start()
    try:
        database = instance.database if isinstance(instance, PooledPostgres) else instance
        asyncio.run(migrate(database.url))
        yield instance
    finally:
        instance.stop()


def outage_settings(server: Server, **overrides: object) -> Settings:
    if isinstance(server, PooledPostgres):
        overrides = {
            "database_pooler": "transaction",
            "pooler_admin_url": server.admin_url,
            **overrides,
        }
    return settings_for(server.url, connect_timeout=1, ready_timeout=1, pool_timeout=2, **overrides)


async def timed(request: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request  # type: ignore[misc]
    return response, time.monotonic() - started


async def test_a_crashed_database_is_503_fast_and_the_service_recovers_when_it_returns(
    server: Server,
) -> None:
    async with serving(outage_settings(server)) as (app, client):
        created = await client.post("/products", json=product_payload("SURVIVOR"))
        assert created.status_code == 201
        product_url = f"/products/{created.json()['id']}"

        server.crash()
        for _ in range(3):
            response, took = await timed(client.get(product_url))
            body = assert_problem(response, 503)
            assert response.headers["retry-after"] == "1"
            assert "database" in body["detail"]
            assert took < 1 + MARGIN  # bounded by the connect timeout
        response, took = await timed(client.get("/health/ready"))
        assert_problem(response, 503)
        assert took < 1 + MARGIN
        assert (await client.get("/health/live")).status_code == 200

        server.start()
        # No restart of the service: the next requests open fresh connections. A
        # pooler whose logins failed tries the server again after server_login_retry
        # (1 s here; PgBouncer's default is 15 s) and refuses clients until then.
        if isinstance(server, PooledPostgres):

            async def answers() -> bool:
                return (await client.get(product_url)).status_code == 200

            await until(answers, within=1 + MARGIN, what="the pooler to reach the server")
        assert (await client.get(product_url)).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
        assert app.state.engine.pool.checkedout() == 0


async def test_after_a_quiet_restart_no_request_fails(
    server: Server,
) -> None:
    # Nothing touches the pool while the database restarts, so its connections are
    # all dead; the idle ping replaces them before the first request can use them.
    async with serving(outage_settings(server, pool_size=3)) as (app, client):
        await asyncio.gather(*(client.get("/products") for _ in range(6)))
        assert app.state.engine.pool.checkedin() >= 1
        server.crash()
        server.start()
        await asyncio.sleep(1.1)  # pooled connections now count as idle
        responses = await asyncio.gather(*(client.get("/products") for _ in range(6)))
        assert [response.status_code for response in responses] == [200] * 6


async def test_a_frozen_database_costs_bounded_waits_not_hangs(
    server: Server,
) -> None:
    # statement_timeout 1 s: the client gives up on a silent server after 1 + 5 s.
    settings = outage_settings(server, statement_timeout=1)
    client_bound = 1 + 5
    async with serving(settings) as (app, client):
        created = await client.post("/products", json=product_payload("FROZEN"))
        product_url = f"/products/{created.json()['id']}"

        server.freeze()
        try:
            response, took = await timed(client.get("/health/ready"))
            assert_problem(response, 503)
            assert took < 1 + MARGIN
            results = await asyncio.gather(
                *(timed(client.get(product_url)) for _ in range(3)),
                timed(client.post("/products", json=product_payload("NEVER"))),
            )
            for response, took in results:
                assert_problem(response, 503)
                assert took < client_bound + MARGIN
        finally:
            server.thaw()

        for _ in range(20):  # connections that timed out are replaced
            if (await client.get(product_url)).status_code == 200:
                break
            await asyncio.sleep(0.25)
        assert (await client.get(product_url)).status_code == 200
        listing = (await client.get("/products")).json()
        assert [item["sku"] for item in listing["items"]] == ["FROZEN"]
        # The readiness probe given up on may still be closing its connection.
        await all_checked_in(app.state.engine.pool, within=client_bound)


@only_on("postgresql", "mariadb")
async def test_a_connection_killed_mid_transaction_is_a_503_and_the_pool_stays_healthy(
    backend: Backend, app: FastAPI, client: httpx.AsyncClient
) -> None:
    outsider = create_engine(backend.settings(), pooled=False)
    try:
        async with outsider.connect() as admin, outsider.connect() as lock:
            if backend.name == "postgresql":
                await lock.execute(text("LOCK TABLE products IN EXCLUSIVE MODE"))
            else:
                await lock.execute(text("LOCK TABLES products WRITE"))
            blocked = asyncio.create_task(client.post("/products", json=product_payload("KILLED")))
            victim = await _wait_for_blocked_session(admin, backend)
            if backend.name == "postgresql":
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
            else:
                await admin.execute(text(f"KILL {int(victim)}"))
            response = await asyncio.wait_for(blocked, 10)
            if backend.name == "mariadb":
                await lock.execute(text("UNLOCK TABLES"))
            await lock.rollback()
    finally:
        await outsider.dispose()

    assert_problem(response, 503)
    assert app.state.engine.pool.checkedout() == 0
    results = await asyncio.gather(
        *(client.post("/products", json=product_payload(f"AFTER-{n}")) for n in range(5))
    )
    assert [result.status_code for result in results] == [201] * 5
    skus = {item["sku"] for item in (await client.get("/products")).json()["items"]}
    assert "KILLED" not in skus


async def _wait_for_blocked_session(admin: object, backend: Backend) -> int:
    if backend.name == "postgresql":
        query = text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
            "AND wait_event_type = 'Lock'"
        ).bindparams(name=TEST_APPLICATION_NAME)
    else:
        query = text(
            "SELECT id FROM information_schema.processlist "
            "WHERE state LIKE 'Waiting for table%' AND info LIKE 'INSERT INTO products%'"
        )
    for _ in range(200):
        found = (await admin.execute(query)).scalar()  # type: ignore[attr-defined]
        if found is not None:
            return int(found)
        # PostgreSQL shows pg_stat_activity as it was when the transaction first read
        # it: end the transaction to see it anew.
        await admin.rollback()  # type: ignore[attr-defined]
        await asyncio.sleep(0.02)
    pytest.fail("the request never blocked on the lock")
