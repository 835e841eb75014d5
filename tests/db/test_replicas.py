"""Reads from a real PostgreSQL hot standby: where reads land, read-your-writes with the
consistency token, a lagging or stopped standby skipped and taken back, and writes
resuming on a promoted standby without a restart of the service.

The primary and the standby are the test's own (tests/replication.py): made with
pg_basebackup -R, streaming, a few seconds to start.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from typer.testing import CliRunner

from catalog.cli import app as cli
from catalog.config import Settings, get_settings
from catalog.consistency import CONSISTENCY_COOKIE, CONSISTENCY_HEADER, ReplicaReaderDep
from catalog.db.engine import create_engine
from catalog.db.replica import parse_lsn
from tests.helpers import (
    assert_problem,
    bearer,
    create_user,
    migrate,
    product_payload,
    serving,
    settings_for,
    until,
)
from tests.replication import ThrowawayReplicatedPostgres

pytestmark = pytest.mark.postgresql


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayReplicatedPostgres]:
    """A primary and its streaming hot standby, migrated; shared by the tests that leave
    them as they found them."""
    made = ThrowawayReplicatedPostgres()
    made.start()
    try:
        asyncio.run(migrate(made.primary_url))
        yield made
    finally:
        made.stop()


def replica_settings(cluster: ThrowawayReplicatedPostgres, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "read_database_url": cluster.standby_url,
        "replica_check_interval": 0.1,
        "replica_max_lag": 30,
        "connect_timeout": 1,
        "ready_timeout": 1,
    }
    return settings_for(cluster.primary_url, **{**values, **overrides})


async def _where(app: FastAPI) -> None:
    @app.get("/test-only/where-reads-go")
    async def where(reader: ReplicaReaderDep) -> dict[str, bool]:
        in_recovery = await reader.scalar_one(text("SELECT pg_is_in_recovery()"))
        return {"standby": bool(in_recovery)}


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Reads routed between two scrapes (the counters are the process's)."""
    return {
        where: after[where] - before.get(where, 0)
        for where in after
        if after[where] != before.get(where, 0)
    }


async def _routed(client: httpx.AsyncClient) -> dict[str, float]:
    exposition = (await client.get("/metrics")).text
    counts: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith("catalog_db_reads_routed_total{"):
            where = line.split('to="', 1)[1].split('"', 1)[0]
            counts[where] = float(line.rsplit(" ", 1)[1])
    return counts


@pytest.fixture
async def served(
    cluster: ThrowawayReplicatedPostgres, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    marker = request.node.get_closest_marker("replica")
    settings = replica_settings(cluster, **(marker.kwargs if marker else {}))
    async with serving(settings) as (app, client):
        await _where(app)
        async with app.state.engine.begin() as connection:
            await connection.execute(text("DELETE FROM order_lines"))
            await connection.execute(text("DELETE FROM orders"))
            await connection.execute(text("DELETE FROM products"))
        cluster.wait_caught_up()
        # A started monitor serves nothing until a second check (it cannot tell a
        # replica a moment behind from one hours behind on one look).
        await until(lambda: app.state.replica.state.usable, within=5, what="the replica usable")
        yield app, client


async def test_public_reads_land_on_the_standby_and_writes_on_the_primary(
    served: tuple[FastAPI, httpx.AsyncClient], cluster: ThrowawayReplicatedPostgres
) -> None:
    app, client = served
    created = await client.post("/products", json=product_payload())
    assert created.status_code == 201
    token = created.headers[CONSISTENCY_HEADER]
    assert CONSISTENCY_COOKIE in created.headers["set-cookie"]
    position = parse_lsn(token)
    assert position is not None
    await until(
        lambda: app.state.replica.state.replayed >= position,
        within=5,
        what="the monitor to see the write replayed",
    )
    client.cookies.clear()
    assert (await client.get("/test-only/where-reads-go")).json() == {"standby": True}
    before = await _routed(client)
    assert (await client.get(f"/products/{created.json()['id']}")).status_code == 200
    listing = await client.get("/products", headers={CONSISTENCY_HEADER: token})
    assert [item["sku"] for item in listing.json()["items"]] == ["SKU-1"]
    export = await client.get("/products/export")
    assert export.text.count("\n") == 1
    after = await _routed(client)
    assert _delta(before, after) == {"replica": 3}


async def test_a_client_that_sends_its_token_reads_its_own_write_on_a_lagging_standby(
    served: tuple[FastAPI, httpx.AsyncClient], cluster: ThrowawayReplicatedPostgres
) -> None:
    _, client = served
    created = (await client.post("/products", json=product_payload())).json()
    cluster.wait_caught_up()
    url = f"/products/{created['id']}"
    etag = (await client.get(url)).headers["etag"]
    cluster.pause_replay()
    before = await _routed(client)
    try:
        changed = await client.patch(url, json={"price": "30.00"}, headers={"If-Match": etag})
        assert changed.status_code == 200
        token = changed.headers[CONSISTENCY_HEADER]
        client.cookies.clear()
        # Without the token a stale read is possible: the standby has not replayed it.
        stale = await client.get(url)
        assert stale.json()["price"] == "24.90"
        assert stale.headers["etag"] == etag
        # With it (header, or the cookie a browser keeps), the client sees its write...
        fresh = await client.get(url, headers={CONSISTENCY_HEADER: token})
        assert fresh.json()["price"] == "30.00"
        client.cookies.set(CONSISTENCY_COOKIE, token)
        by_cookie = await client.get(url)
        client.cookies.clear()
        assert by_cookie.json()["price"] == "30.00"
        # ...and its next conditional write is not refused for a stale ETag.
        again = await client.patch(
            url, json={"price": "31.00"}, headers={"If-Match": fresh.headers["etag"]}
        )
        assert again.status_code == 200
        assert _delta(before, await _routed(client)) == {"replica": 1, "primary:token": 2}
    finally:
        cluster.resume_replay()
    cluster.wait_caught_up()
    # Once replayed, the same token is served by the standby.
    before = (await _routed(client)).get("replica", 0)

    async def served_by_standby() -> bool:
        response = await client.get(url, headers={CONSISTENCY_HEADER: token})
        return (await _routed(client)).get("replica", 0) > before and response.status_code == 200

    await until(served_by_standby, within=5, what="the standby to serve the token's read")


async def test_a_malformed_token_is_a_400(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    response = await client.get("/products", headers={CONSISTENCY_HEADER: "'; DROP TABLE x"})
    body = assert_problem(response, 400)
    assert body["type"].endswith("invalid-consistency-token")


@pytest.mark.replica(replica_max_lag=0.5)
async def test_a_lagging_standby_is_skipped_and_taken_back(
    served: tuple[FastAPI, httpx.AsyncClient], cluster: ThrowawayReplicatedPostgres
) -> None:
    app, client = served
    monitor = app.state.replica
    before = await _routed(client)
    cluster.pause_replay()
    try:
        await client.post("/products", json=product_payload("WHILE-PAUSED"))
        await until(lambda: not monitor.state.usable, within=5, what="the standby to be skipped")
        assert monitor.state.reason.startswith("lagging")
        client.cookies.clear()
        # Reads answer, fresh, from the primary.
        listing = (await client.get("/products")).json()["items"]
        assert [item["sku"] for item in listing] == ["WHILE-PAUSED"]
        assert (await client.get("/test-only/where-reads-go")).json() == {"standby": False}
        assert _delta(before, await _routed(client))["primary:lag"] >= 2
        assert "catalog_db_replica_usable 0.0" in (await client.get("/metrics")).text
    finally:
        cluster.resume_replay()
    await until(lambda: monitor.state.usable, within=5, what="the standby to be taken back")
    assert (await client.get("/test-only/where-reads-go")).json() == {"standby": True}


async def test_a_stopped_standby_is_skipped_and_taken_back(
    served: tuple[FastAPI, httpx.AsyncClient], cluster: ThrowawayReplicatedPostgres
) -> None:
    app, client = served
    monitor = app.state.replica
    await client.post("/products", json=product_payload("KEPT"))
    before = await _routed(client)
    cluster.stop_standby()
    try:
        await until(lambda: not monitor.state.usable, within=5, what="the standby to be skipped")
        client.cookies.clear()
        for _ in range(3):
            listing = await client.get("/products")
            assert [item["sku"] for item in listing.json()["items"]] == ["KEPT"]
        assert _delta(before, await _routed(client))["primary:down"] >= 3
    finally:
        cluster.start_standby()
    await until(lambda: monitor.state.usable, within=10, what="the standby to be taken back")
    # The read engine's pooled connections died with the standby: the next reads
    # replace them rather than fail.
    for _ in range(3):
        assert (await client.get("/test-only/where-reads-go")).status_code == 200
    assert (await client.get("/test-only/where-reads-go")).json() == {"standby": True}


async def test_writes_resume_on_the_promoted_standby_and_no_acknowledged_order_is_lost() -> None:
    # A cluster of this test's own: it ends with the primary gone. Commits wait for the
    # standby (synchronous replication): an order acknowledged is an order on both.
    cluster = ThrowawayReplicatedPostgres()
    cluster.start()
    try:
        await migrate(cluster.primary_url)
        cluster.psql(
            cluster.primary_port,
            "ALTER SYSTEM SET synchronous_standby_names = 'catalog_standby'",
        )
        cluster.psql(cluster.primary_port, "SELECT pg_reload_conf()")
        await until(
            lambda: (
                cluster.psql(cluster.primary_port, "SELECT sync_state FROM pg_stat_replication")
                == "sync"
            ),
            within=10,
            what="the standby to be synchronous",
        )
        # Both hosts: each new connection takes the one that accepts writes.
        settings = settings_for(
            cluster.multihost_url("read-write"), connect_timeout=1, pool_timeout=2
        )
        async with serving(settings) as (app, client):
            product = (await client.post("/products", json=product_payload(stock=100_000))).json()
            buyer = bearer(await create_user(app.state.engine, "buyer@example.com"), settings)
            acknowledged: list[int] = []
            statuses: list[int] = []
            stop = asyncio.Event()

            async def place_orders() -> None:
                while not stop.is_set():
                    response = await client.post(
                        "/orders",
                        json={"items": [{"product_id": product["id"], "quantity": 1}]},
                        headers=buyer,
                    )
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        acknowledged.append(response.json()["id"])
                    elif response.status_code != 503:
                        pytest.fail(f"{response.status_code}: {response.text}")
                    else:
                        await asyncio.sleep(0.05)

            writers = [asyncio.create_task(place_orders()) for _ in range(2)]
            await until(lambda: len(acknowledged) >= 20, within=20, what="orders before")
            before = len(acknowledged)
            stopped_at = time.monotonic()
            cluster.stop_primary()
            await asyncio.to_thread(cluster.promote)
            await until(lambda: len(acknowledged) > before + 5, within=30, what="orders after")
            resumed_after = time.monotonic() - stopped_at
            stop.set()
            await asyncio.gather(*writers)

        promoted = create_engine(Settings(database_url=cluster.standby_url), pooled=False)
        try:
            async with promoted.connect() as connection:
                stored = set(
                    (await connection.execute(text("SELECT id FROM orders"))).scalars().all()
                )
                in_recovery = await connection.scalar(text("SELECT pg_is_in_recovery()"))
        finally:
            await promoted.dispose()
    finally:
        cluster.stop()
    assert in_recovery is False
    assert set(acknowledged) <= stored, "an acknowledged order was lost"
    assert 503 in statuses  # the outage was answered, not hidden
    print(f"writes resumed {resumed_after:.2f} s after the primary stopped")
    assert resumed_after < 15


def test_doctor_says_whether_the_replica_serves_reads(
    cluster: ThrowawayReplicatedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_DATABASE_URL", cluster.primary_url)
    monkeypatch.setenv("CATALOG_READ_DATABASE_URL", cluster.standby_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "250"})
        assert "read replica" in result.output
        assert "serves reads (streaming)" in result.output, result.output
        cluster.stop_standby()
        try:
            result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "250"})
        finally:
            cluster.start_standby()
        assert "serves NO reads, they go to the primary: unreachable" in result.output
    finally:
        get_settings.cache_clear()
