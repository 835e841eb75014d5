"""/metrics and /health/pool tell the truth about the pool and the requests."""

import asyncio
import re
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.pool import MeteredPool
from tests.conftest import Backend
from tests.helpers import product_payload, serving
from tests.servers import catalog_server


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 if absent)."""
    for line in exposition.splitlines():
        if not line.startswith(name):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    product = (await client.post("/products", json=product_payload())).json()
    before = await scrape(client)

    for _ in range(3):
        await client.get(f"/products/{product['id']}")
    await client.get("/products/999999")

    after = await scrape(client)
    name = "catalog_http_requests_total"
    ok = {"method": "GET", "route": "/products/{product_id}", "status": "200"}
    missing = {**ok, "status": "404"}
    assert sample(after, name, **ok) - sample(before, name, **ok) == 3
    assert sample(after, name, **missing) - sample(before, name, **missing) == 1
    assert f'route="/products/{product["id"]}"' not in after  # never the raw path
    latency = "catalog_http_request_duration_seconds_count"
    assert sample(after, latency, **missing) - sample(before, latency, **missing) == 1


async def test_connection_hold_time_is_recorded_per_route(client: httpx.AsyncClient) -> None:
    name = "catalog_db_connection_hold_seconds_count"
    before = sample(await scrape(client), name, route="/products")
    await client.post("/products", json=product_payload())
    await client.get("/products")
    after = sample(await scrape(client), name, route="/products")
    assert after - before == 2


async def test_pool_snapshot_shows_connections_lent_and_requests_waiting(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    idle = (await client.get("/health/pool")).json()
    assert idle["checked_out"] == 0
    assert idle["pool_size"] == app.state.settings.pool_size
    assert idle["waiting"] == 0

    holders = []
    capacity = app.state.settings.pool_size + app.state.settings.max_overflow
    for _ in range(capacity):
        holder = await engine.connect()
        await holder.execute(text("SELECT 1"))
        # Still checked out, holding no transaction: behind a pooler, no server connection.
        await holder.commit()
        holders.append(holder)
    waiter = asyncio.create_task(client.get("/products"))
    try:
        for _ in range(100):
            busy = (await client.get("/health/pool")).json()
            if busy["waiting"]:
                break
            await asyncio.sleep(0.01)
        assert busy["checked_out"] == capacity
        assert busy["overflow"] == app.state.settings.max_overflow
        assert busy["waiting"] == 1
        gauges = await scrape(client)
        assert sample(gauges, "catalog_db_pool_waiting") == 1
        assert sample(gauges, "catalog_db_pool_checked_out") == capacity
    finally:
        for holder in holders:
            await holder.close()
    assert (await waiter).status_code == 200
    assert (await client.get("/health/pool")).json()["checked_out"] == 0


async def test_checkout_timeouts_are_counted(backend: Backend) -> None:
    settings = backend.settings(pool_size=1, max_overflow=0, pool_timeout=0.2)
    async with serving(settings) as (app, client):
        engine: AsyncEngine = app.state.engine
        assert isinstance(engine.sync_engine.pool, MeteredPool)
        async with engine.connect() as holder:
            await holder.execute(text("SELECT 1"))
            before = sample(await scrape(client), "catalog_db_checkout_timeouts_total")
            assert (await client.get("/products")).status_code == 503
            after = sample(await scrape(client), "catalog_db_checkout_timeouts_total")
            assert after - before == 1
            assert (await client.get("/health/pool")).json()["checkout_timeouts"] == 1


def test_metrics_of_several_workers_are_summed(backend: Backend, tmp_path: Path) -> None:
    env = {**backend.env(), "CATALOG_POOL_SIZE": "3"}
    live = {"method": "GET", "route": "/health/live", "status": "200"}
    with catalog_server(env, tmp_path / "server.log", workers=2) as server:
        before = httpx.get(f"{server.base_url}/metrics").text
        # A new connection per request: the kernel spreads them over both workers.
        for _ in range(40):
            response = httpx.get(f"{server.base_url}/health/live", headers={"Connection": "close"})
            assert response.status_code == 200
        exposition = httpx.get(f"{server.base_url}/metrics").text
    assert server.output().count("Started server process") == 2
    name = "catalog_http_requests_total"
    assert sample(exposition, name, **live) - sample(before, name, **live) == 40
    # Both workers' pools (each checked the schema at start), added up.
    assert sample(exposition, "catalog_db_pool_size") == 2 * 3
