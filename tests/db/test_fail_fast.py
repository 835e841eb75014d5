"""An exhausted pool fails fast and clean; cancelled requests give their connection back."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Backend
from tests.helpers import (
    admin_headers,
    assert_problem,
    product_payload,
    products_locked,
    serving,
    until,
)
from tests.servers import catalog_server

POOL_TIMEOUT = 1.0
# Enough for the scheduling of a loaded 2-core machine; a hang would take far longer.
MARGIN = 1.5


@asynccontextmanager
async def small_app(backend: Backend, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    # SQLite would give up on the lock after its busy timeout: wait as long as servers do.
    settings = backend.settings(
        pool_size=2, max_overflow=0, pool_timeout=POOL_TIMEOUT, sqlite_busy_timeout=30, **overrides
    )
    async with serving(settings) as (app, client):
        engine: AsyncEngine = app.state.engine
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM order_lines"))
            await connection.execute(text("DELETE FROM products"))
        client.app_engine = engine  # type: ignore[attr-defined]
        yield client


async def timed_post(client: httpx.AsyncClient, sku: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post("/products", json=product_payload(sku))
    return response, time.monotonic() - started


async def test_requests_beyond_the_pool_get_503_within_the_timeout_and_write_nothing(
    backend: Backend,
) -> None:
    async with small_app(backend) as client:
        engine: AsyncEngine = client.app_engine  # type: ignore[attr-defined]
        async with products_locked(backend):
            # 2 requests take the pool's 2 connections and block on the lock; 8 wait
            # for a connection that never comes free.
            tasks = [asyncio.create_task(timed_post(client, f"FAST-{n}")) for n in range(10)]
            done, _ = await asyncio.wait(tasks, timeout=POOL_TIMEOUT + MARGIN + 3)
            refused = [task.result() for task in done]
            assert len(refused) == 8, [response.status_code for response, _ in refused]
            for response, waited in refused:
                assert_problem(response, 503)
                assert response.headers["retry-after"] == "1"
                assert POOL_TIMEOUT * 0.9 <= waited <= POOL_TIMEOUT + MARGIN
        # The lock is gone: the 2 that held connections finish.
        results = await asyncio.gather(*tasks)
        statuses = sorted(response.status_code for response, _ in results)
        assert statuses == [201, 201] + [503] * 8
        created = {response.json()["sku"] for response, _ in results if response.status_code == 201}
        listing = (await client.get("/products")).json()
        assert {item["sku"] for item in listing["items"]} == created
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_cancelled_request_returns_its_connection(backend: Backend) -> None:
    async with small_app(backend) as client:
        engine: AsyncEngine = client.app_engine  # type: ignore[attr-defined]
        async with products_locked(backend):
            # Requests blocked inside the database on the lock, then cancelled, as a
            # server does with requests when it gives up on them.
            tasks = [asyncio.create_task(timed_post(client, f"CANCEL-{n}")) for n in range(2)]
            for _ in range(200):
                if engine.pool.checkedout() == 2:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.01)
            assert engine.pool.checkedout() == 2  # type: ignore[attr-defined]
            for task in tasks:
                task.cancel()
            if backend.name != "sqlite" or backend.url.startswith("sqlite+inline"):
                # The drivers' waits are interrupted at once, lock or no lock (on
                # sqlite+inline the wait for the lock is an asyncio.sleep).
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        # On aiosqlite, sqlite3 blocks in a thread that cancellation cannot interrupt: its
        # connection comes back when the blocked call returns, once the lock is gone.
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        for _ in range(200):
            if engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # The pool serves again, and nothing of the cancelled requests was written.
        assert (await client.post("/products", json=product_payload("AFTER"))).status_code == 201
        skus = {item["sku"] for item in (await client.get("/products")).json()["items"]}
        assert skus == {"AFTER"}


async def test_clients_that_hang_up_mid_request_leak_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    env = {
        **backend.env(),
        "CATALOG_POOL_SIZE": "2",
        "CATALOG_MAX_OVERFLOW": "0",
        "CATALOG_SQLITE_BUSY_TIMEOUT": "30",
    }
    headers = await admin_headers(backend.settings())
    with catalog_server(env, tmp_path / "server.log") as server:
        async with products_locked(backend):
            # Raw sockets that send a request, wait until it is inside the database,
            # then hang up without reading the answer.
            writers = []
            for n in range(4):
                _, writer = await asyncio.open_connection("127.0.0.1", server.port)
                body = json.dumps(product_payload(f"GONE-{n}")).encode()
                writer.write(
                    b"POST /products HTTP/1.1\r\nHost: catalog\r\n"
                    b"Content-Type: application/json\r\n"
                    + f"Authorization: {headers['Authorization']}\r\n".encode()
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                writers.append(writer)
            async with httpx.AsyncClient(base_url=server.base_url) as probe:

                async def all_inside() -> bool:
                    # Two hold the pool's two connections at the lock, two wait for one.
                    state = (await probe.get("/health/pool")).json()
                    return bool(state["checked_out"] == 2 and state["waiting"] == 2)

                await until(all_inside, within=10, what="the four requests to be inside")
            for writer in writers:
                writer.transport.abort()
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, headers=headers
        ) as client:
            for _ in range(100):
                state = (await client.get("/health/pool")).json()
                if state["checked_out"] == 0 and state["waiting"] == 0:
                    break
                await asyncio.sleep(0.05)
            assert state["checked_out"] == 0
            assert state["waiting"] == 0
            created = await client.post("/products", json=product_payload("STILL-SERVING"))
            assert created.status_code == 201
    assert "Traceback" not in server.output()
