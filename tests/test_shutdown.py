"""SIGTERM: in-flight requests finish, new ones are refused, no connection is left."""

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from catalog.db.engine import create_engine
from tests.conftest import Backend
from tests.helpers import (
    admin_headers,
    assert_problem,
    only_on,
    pooler_clients,
    product_payload,
    products_locked,
    server_session_waits,
    until,
)
from tests.servers import Server, catalog_server

APP_NAME = "catalog-shutdown-test"


async def server_connections(backend: Backend) -> int:
    """The service's connections: at the server, or at the pooler in front of it (whose
    own server connections outlive their clients)."""
    if backend.pooler_admin_url is not None:
        return await pooler_clients(backend.pooler_admin_url, APP_NAME)
    probe = create_engine(backend.settings(), pooled=False)
    try:
        async with probe.connect() as connection:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
            return int((await connection.execute(query, {"name": APP_NAME})).scalar_one())
    finally:
        await probe.dispose()


def _env(backend: Backend, *, grace_period: int) -> dict[str, str]:
    return {
        **backend.env(),
        "CATALOG_APPLICATION_NAME": APP_NAME,
        "CATALOG_SHUTDOWN_GRACE_PERIOD": str(grace_period),
    }


async def refuses_connections(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base_url) as fresh:
            await fresh.get("/health/live")
    except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
        # Refused, or accepted by a listener closing under it and hung up unanswered.
        return True
    return False


async def wait_for_exit(server: Server, within: float) -> int:
    for _ in range(int(within * 20)):
        if (code := server.process.poll()) is not None:
            return code
        await asyncio.sleep(0.05)
    pytest.fail(f"server still running {within} s after SIGTERM:\n{server.output()}")


@only_on("postgresql")
async def test_sigterm_lets_in_flight_requests_finish_then_closes_every_connection(
    backend: Backend, tmp_path: Path
) -> None:
    with catalog_server(_env(backend, grace_period=10), tmp_path / "server.log") as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, headers=await admin_headers(backend.settings())
        ) as client:
            for _ in range(5):  # warm the pool: several connections at the server
                await asyncio.gather(*(client.get("/products") for _ in range(4)))
            assert await server_connections(backend) >= 1
            async with products_locked(backend):
                in_flight = asyncio.create_task(
                    client.post("/products", json=product_payload("IN-FLIGHT"))
                )
                await until(
                    lambda: server_session_waits(backend, APP_NAME, "lock"),
                    within=10,
                    what="the POST to wait on the lock, in the database",
                )
                server.process.send_signal(signal.SIGTERM)
                await until(
                    lambda: refuses_connections(server.base_url),
                    within=5,
                    what="new connections to be refused",
                )
                assert server.process.poll() is None  # still serving the POST
            response = await in_flight
        assert response.status_code == 201
        await wait_for_exit(server, within=10)
    assert "Application shutdown complete" in server.output()
    assert await server_connections(backend) == 0


@only_on("postgresql")
async def test_requests_still_running_after_the_grace_period_get_503_and_are_rolled_back(
    backend: Backend, tmp_path: Path
) -> None:
    outsider = create_engine(backend.settings(), pooled=False)
    with catalog_server(_env(backend, grace_period=1), tmp_path / "server.log") as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, headers=await admin_headers(backend.settings())
        ) as client:
            async with products_locked(backend):
                stuck = asyncio.create_task(client.post("/products", json=product_payload("CUT")))
                await until(
                    lambda: server_session_waits(backend, APP_NAME, "lock"),
                    within=10,
                    what="the POST to wait on the lock, in the database",
                )
                server.process.send_signal(signal.SIGTERM)
                # Answered, not cut off: the client knows to retry elsewhere.
                response = await asyncio.wait_for(stuck, 8)
                exit_code = await wait_for_exit(server, within=8)
            body = assert_problem(response, 503)
            assert body["type"] == "/problems/shutting-down"
            assert response.headers["connection"] == "close"
            assert response.headers["retry-after"] == "1"
            # A clean shutdown, not death by the signal it was asked to stop with.
            assert exit_code == 0, server.output()
        async with outsider.connect() as connection:
            written = await connection.scalar(
                text("SELECT count(*) FROM products WHERE sku = 'CUT'")
            )
    await outsider.dispose()
    assert written == 0
    assert await server_connections(backend) == 0
