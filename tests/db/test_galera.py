"""A MariaDB Galera cluster: writes to one node, public reads from another, read-your-
writes across nodes with the consistency token, a desynced node skipped and taken back,
and what writing to two nodes at once costs (why catalog writes to one).

(The whole MariaDB suite also runs on a Galera node: the `galera` backend.)
"""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from catalog.config import Settings
from catalog.consistency import CONSISTENCY_HEADER, ReplicaReaderDep
from tests.conftest import Backend
from tests.galera import ThrowawayGalera
from tests.helpers import bearer, create_user, product_payload, serving, settings_for, until

# The `galera` backend: the cluster's first node, migrated (tests/conftest.py).
pytestmark = pytest.mark.parametrize(
    "backend",
    [pytest.param("galera", marks=[pytest.mark.mariadb, pytest.mark.galera])],
    indirect=True,
)


def node_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "replica_check_interval": 0.1,
        "connect_timeout": 2,
        "ready_timeout": 2,
    }
    return settings_for(url, **{**values, **overrides})


@pytest.fixture
async def served(
    backend: Backend, galera_cluster: ThrowawayGalera
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """catalog writing to node 1 and reading from node 2."""
    settings = node_settings(backend.url, read_database_url=galera_cluster.urls[1])
    async with serving(settings) as (app, client):

        @app.get("/test-only/which-node")
        async def which_node(reader: ReplicaReaderDep) -> dict[str, int]:
            return {"port": int(await reader.scalar_one(text("SELECT @@port")))}

        async with app.state.engine.begin() as connection:
            for table in ("order_lines", "orders", "products"):
                await connection.execute(text(f"DELETE FROM {table}"))
        await until(lambda: app.state.replica.state.usable, within=5, what="node 2 usable")
        yield app, client


async def test_public_reads_go_to_another_node_and_see_the_clients_own_writes(
    served: tuple[FastAPI, httpx.AsyncClient], galera_cluster: ThrowawayGalera
) -> None:
    _, client = served
    assert (await client.get("/test-only/which-node")).json() == {"port": galera_cluster.ports[1]}
    for n in range(20):
        created = await client.post("/products", json=product_payload(f"RYW-{n}"))
        token = created.headers[CONSISTENCY_HEADER]
        assert token.isdigit()  # the cluster's seqno after the commit
        client.cookies.clear()
        # Right after the write, with its token: the write is there, whichever node
        # serves the read.
        read = await client.get(
            f"/products/{created.json()['id']}", headers={CONSISTENCY_HEADER: token}
        )
        assert read.status_code == 200, read.text


async def test_a_desynced_node_is_skipped_and_taken_back(
    served: tuple[FastAPI, httpx.AsyncClient], galera_cluster: ThrowawayGalera
) -> None:
    app, client = served
    monitor = app.state.replica
    # FLUSH TABLES WITH READ LOCK stops node 2 applying the cluster's writes: it leaves
    # the Synced state and falls behind.
    locker = await asyncio.create_subprocess_exec(
        "mariadb",
        "--no-defaults",
        "-uroot",
        "-h127.0.0.1",
        f"-P{galera_cluster.ports[1]}",
        "-e",
        "FLUSH TABLES WITH READ LOCK; SELECT SLEEP(30)",
    )
    try:
        await until(lambda: not monitor.state.usable, within=10, what="node 2 to be skipped")
        assert monitor.state.reason == "not a Synced Galera node"
        created = await client.post("/products", json=product_payload("WHILE-DESYNCED"))
        assert created.status_code == 201
        client.cookies.clear()
        listing = (await client.get("/products")).json()["items"]
        assert [item["sku"] for item in listing] == ["WHILE-DESYNCED"]
        assert (await client.get("/test-only/which-node")).json() == {
            "port": galera_cluster.ports[0]
        }
    finally:
        locker.kill()
        await locker.wait()
    await until(lambda: monitor.state.usable, within=20, what="node 2 to be taken back")
    listing = (await client.get("/products")).json()["items"]
    assert [item["sku"] for item in listing] == ["WHILE-DESYNCED"]


async def test_orders_written_on_two_nodes_at_once_conflict_at_commit_and_never_oversell(
    backend: Backend, galera_cluster: ThrowawayGalera
) -> None:
    # Why catalog sends every write to one node: the same hot row changed on two nodes
    # is only found out at commit (certification), as deadlock error 1213: retried by
    # catalog.db.retry while the request works, a 503 if it comes at the commit. None
    # oversells.
    stock = 30
    async with (
        serving(node_settings(galera_cluster.urls[0])) as (app1, client1),
        serving(node_settings(galera_cluster.urls[1])) as (_, client2),
    ):
        async with app1.state.engine.begin() as connection:
            for table in ("order_lines", "orders", "products"):
                await connection.execute(text(f"DELETE FROM {table}"))
        product = (await client1.post("/products", json=product_payload(stock=stock))).json()
        buyer = bearer(
            await create_user(app1.state.engine, "buyer@example.com"), app1.state.settings
        )
        items = {"items": [{"product_id": product["id"], "quantity": 1}]}
        # Wait until node 2 sees the product.
        await until(lambda: _exists(client2, product["id"]), within=5, what="the product on node 2")
        responses = await asyncio.gather(
            *(
                (client1 if n % 2 else client2).post("/orders", json=items, headers=buyer)
                for n in range(stock + 10)
            )
        )
        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {201, 409, 503}, statuses
        placed = statuses.count(201)
        left = (await client1.get(f"/products/{product['id']}")).json()["stock"]
        assert left == stock - placed >= 0
        assert placed > 0


async def _exists(client: httpx.AsyncClient, product_id: int) -> bool:
    return (await client.get(f"/products/{product_id}")).status_code == 200
