"""Liveness and readiness, including a database that goes away and comes back."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Backend
from tests.helpers import assert_problem, only_on, product_payload, serving
from tests.tcp_proxy import TcpProxy


async def test_live_answers_without_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_makes_a_round_trip(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    responses = schema["paths"]["/products"]["post"]["responses"]
    assert "application/problem+json" in responses["409"]["content"]
    assert responses["422"]["content"]["application/problem+json"]["schema"]["$ref"].endswith(
        "ValidationProblem"
    )


@pytest.fixture
async def proxy(backend: Backend) -> AsyncIterator[TcpProxy]:
    tcp_proxy = TcpProxy(backend.url)
    await tcp_proxy.start()
    yield tcp_proxy
    await tcp_proxy.stop()


@only_on("postgresql", "mariadb")
async def test_database_outage_is_503_and_the_service_recovers_by_itself(
    backend: Backend, proxy: TcpProxy
) -> None:
    settings = backend.settings(database_url=proxy.proxied_url, ready_timeout=1, connect_timeout=1)
    async with serving(settings) as (app, client):
        assert (await client.get("/health/ready")).status_code == 200
        created = await client.post("/products", json=product_payload("OUTAGE-1"))
        product_url = f"/products/{created.json()['id']}"

        await proxy.stop()
        started = time.monotonic()
        assert_problem(await client.get("/health/ready"), 503)
        for _ in range(3):
            response = await client.get(product_url)
            body = assert_problem(response, 503)
            assert response.headers["retry-after"] == "1"
            assert "database" in body["detail"]
        assert time.monotonic() - started < 10
        assert app.state.engine.pool.checkedout() == 0

        await proxy.start()
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get(product_url)).status_code == 200
        await client.delete(product_url)
