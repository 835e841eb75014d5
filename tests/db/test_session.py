"""The request session: one per request, committed before the response, never leaked."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.engine import create_engine
from catalog.db.session import Reader, ReaderDep, SessionDep
from catalog.products.models import Product
from tests.conftest import TEST_APPLICATION_NAME, Backend
from tests.helpers import (
    assert_problem,
    only_on,
    product_payload,
    server_session_waits,
    serving,
    until,
)


@pytest.fixture
def checkouts(engine: AsyncEngine) -> AsyncIterator[list[object]]:
    """Every connection checkout from the app's pool while the test runs."""
    seen: list[object] = []

    def record(*args: object) -> None:
        seen.append(args)

    event.listen(engine.sync_engine.pool, "checkout", record)
    yield seen  # type: ignore[misc]
    event.remove(engine.sync_engine.pool, "checkout", record)


async def test_routes_without_database_borrow_no_connection(
    client: httpx.AsyncClient, checkouts: list[object]
) -> None:
    for path in ("/health/live", "/health/pool", "/metrics", "/openapi.json", "/docs", "/nope"):
        response = await client.get(path)
        assert response.status_code < 500
    # Checking a bearer token needs no database: an unauthenticated write is refused
    # without a connection.
    anonymous = {"Authorization": ""}
    assert_problem(await client.post("/products", json={"sku": ""}, headers=anonymous), 401)
    assert_problem(
        await client.post("/products", json={}, headers={"Authorization": "Bearer x.y.z"}), 401
    )
    assert checkouts == []


async def test_a_read_with_bad_parameters_borrows_no_connection(
    client: httpx.AsyncClient, checkouts: list[object]
) -> None:
    # The Reader borrows a connection per statement, after FastAPI has validated.
    for path in ("/products/abc", "/products/0", "/products?limit=0", "/products?sort=nope"):
        assert_problem(await client.get(path), 422)
    assert checkouts == []


async def test_a_database_route_borrows_exactly_one_connection(
    client: httpx.AsyncClient, checkouts: list[object]
) -> None:
    await client.post("/products", json=product_payload())
    assert len(checkouts) == 1


async def test_the_response_is_sent_after_the_commit(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    response = await client.post("/products", json=product_payload())
    # A separate engine sees the row as soon as the 201 arrives.
    other = create_engine(backend.settings(), pooled=False)
    try:
        async with other.connect() as connection:
            found = await connection.scalar(
                select(Product.sku).where(Product.id == response.json()["id"])
            )
    finally:
        await other.dispose()
    assert found == "SKU-1"


@only_on("postgresql")
async def test_a_commit_that_fails_is_an_error_response_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # A deferred constraint trigger fails at COMMIT, after the route has returned:
    # the only place left to turn the failure into an error is the session dependency.
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """
                CREATE OR REPLACE FUNCTION refuse_doomed_sku() RETURNS trigger AS $$
                BEGIN
                    IF NEW.sku = 'DOOMED' THEN
                        RAISE EXCEPTION 'doomed sku' USING ERRCODE = 'check_violation';
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql
                """
            )
        )
        await connection.execute(
            text(
                "CREATE CONSTRAINT TRIGGER refuse_doomed_sku AFTER INSERT ON products "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_doomed_sku()"
            )
        )
    try:
        response = await client.post("/products", json=product_payload("DOOMED"))

        assert_problem(response, 409)
        assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER refuse_doomed_sku ON products"))
            await connection.execute(text("DROP FUNCTION refuse_doomed_sku()"))


def _add_failing_route(app: FastAPI) -> None:
    @app.get("/test-only/fails-after-a-query")
    async def fails_after_a_query(session: SessionDep) -> None:
        session.add(
            # A new SKU each time: concurrent inserts of one key that all roll back
            # deadlock in InnoDB, which is not what this route is here to show.
            Product(sku=f"HALF-{uuid.uuid4().hex[:12]}", name="x", price=1, stock=1, version=1)
        )
        await session.flush()
        raise RuntimeError("a bug inside a route, after it wrote")


async def test_an_exception_inside_a_route_is_a_500_problem_and_rolls_back(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    _add_failing_route(app)

    response = await client.get("/test-only/fails-after-a-query")

    body = assert_problem(response, 500)
    assert "RuntimeError" not in body["detail"]  # no internals leak to the client
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def idle_in_transaction(engine: AsyncEngine, backend: Backend) -> int:
    """Sessions at the server (other than this probe's) holding a transaction while idle."""
    async with engine.connect() as connection:
        if backend.name == "postgresql":
            query = text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            ).bindparams(name=TEST_APPLICATION_NAME)
        elif backend.name == "mariadb":
            query = text(
                "SELECT count(*) FROM information_schema.innodb_trx t "
                "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                "WHERE p.command = 'Sleep' AND p.id <> CONNECTION_ID()"
            )
        else:
            # SQLite: a connection holding a write transaction would make this wait.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
            await connection.exec_driver_sql("ROLLBACK")
            return 0
        return int((await connection.execute(query)).scalar_one())


@only_on("postgresql", "mariadb")
async def test_idle_in_transaction_probe_sees_an_open_transaction(
    engine: AsyncEngine, backend: Backend
) -> None:
    # The probe of the next test must be able to fail: hold a transaction open and look.
    async with engine.connect() as holder:
        await holder.execute(select(Product.id).limit(1))
        await holder.execute(text("SELECT 1"))
        assert await idle_in_transaction(engine, backend) >= 1


async def test_burst_of_mixed_requests_leaves_no_connection_out_and_no_open_transaction(
    app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine, backend: Backend
) -> None:
    _add_failing_route(app)
    existing = (await client.post("/products", json=product_payload("EXISTING"))).json()

    requests = []
    for index in range(25):
        requests += [
            client.get(f"/products/{existing['id']}"),  # 200
            client.get("/products/999999999"),  # 404
            client.post("/products", json=product_payload("EXISTING")),  # 409
            client.post("/products", json=product_payload(f"NEW-{index}")),  # 201
            client.post("/products", json=product_payload(f"BAD-{index}", stock=-1)),  # 422
            client.patch(
                f"/products/{existing['id']}", json={"stock": index}, headers={"If-Match": '"0"'}
            ),  # 412
            client.get("/products", params={"limit": 5}),  # 200
            client.get("/test-only/fails-after-a-query"),  # 500 from an exception
        ]
    responses = await asyncio.gather(*requests)

    statuses = {response.status_code for response in responses}
    assert {200, 201, 404, 409, 412, 422, 500} == statuses
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await idle_in_transaction(engine, backend) == 0
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 26


async def test_an_exhausted_pool_answers_503_with_retry_after_quickly(backend: Backend) -> None:
    settings = backend.settings(pool_size=1, max_overflow=0, pool_timeout=0.5)
    async with serving(settings) as (app, client):
        engine: AsyncEngine = app.state.engine
        async with engine.connect() as holder:  # the pool's only connection, held
            await holder.execute(text("SELECT 1"))
            started = time.monotonic()
            response = await client.get("/products/1")
            waited = time.monotonic() - started

            body = assert_problem(response, 503)
            assert response.headers["retry-after"] == "1"
            assert "retry" in body["detail"]
            assert 0.5 <= waited < 2.5
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@only_on("postgresql")
async def test_a_public_read_is_one_round_trip_on_postgresql(
    backend: Backend, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = (await client.post("/products", json=product_payload())).json()
    statements: list[str] = []  # prepared statements, as SQLAlchemy sends them
    simple: list[str] = []  # asyncpg's simple queries: BEGIN, COMMIT, ROLLBACK, ...
    watched: set[int] = set()

    def watch(dbapi_connection: Any, *_: object) -> None:
        driver = dbapi_connection.driver_connection
        if id(driver) not in watched:
            watched.add(id(driver))
            driver.add_query_logger(lambda logged: simple.append(logged.query))

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine.pool, "checkout", watch)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await client.get(f"/products/{product['id']}")).status_code == 200
        assert (await client.get("/products", params={"limit": 5})).status_code == 200
        reads = (list(statements), list(simple))
        # The check can fail: a write still runs in a transaction of its own.
        assert (await client.post("/products", json=product_payload("W"))).status_code == 201
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        event.remove(engine.sync_engine.pool, "checkout", watch)
    read_statements, read_simple = reads
    assert len(read_statements) == 2  # one SELECT per read request
    if backend.through_pooler:
        # Behind a transaction-mode pooler, each read is a transaction of its own: the
        # pooler could send the SELECT's two messages to two server connections.
        # (The query logger reports the last ROLLBACK a moment later.)
        # (SQLAlchemy 2.0 names the isolation level: BEGIN ISOLATION LEVEL READ COMMITTED.)
        around = [query.rstrip(";").split()[0] for query in read_simple]
        assert around.count("BEGIN") == 2
        assert set(around) == {"BEGIN", "ROLLBACK"}
    else:
        assert read_simple == []  # nothing around the SELECT
    assert any(query.startswith("BEGIN") for query in simple)
    assert "COMMIT;" in simple or "COMMIT" in simple


async def test_a_reader_refuses_writes(app: FastAPI, client: httpx.AsyncClient) -> None:
    # Its annotations keep writes out for mypy; these reach it past them.
    sneaky: dict[str, Any] = {
        "inserts": insert(Product).values(**product_payload("SNEAKY"), version=1),
        "updates": update(Product).values(stock=0),
        "text": text("DELETE FROM products"),
    }

    @app.get("/test-only/reads-through-a-reader")
    async def reads(reader: ReaderDep) -> dict[str, int]:
        return {"products": await reader.scalar_one(text("  select count(*) from products"))}

    @app.get("/test-only/{path}-through-a-reader")
    async def writes(path: str, reader: ReaderDep) -> dict[str, str]:
        await reader.all(sneaky[path])
        return {}

    product = (await client.post("/products", json=product_payload("KEPT"))).json()
    for path in sneaky:
        response = await client.get(f"/test-only/{path}-through-a-reader")
        assert_problem(response, 500)
    assert (await client.get("/test-only/reads-through-a-reader")).json() == {"products": 1}
    assert (await client.get("/products")).json()["items"] == [product]


@only_on("postgresql", "mariadb")
async def test_a_read_cancelled_in_the_database_gives_its_connection_back(
    backend: Backend,
) -> None:
    engine = create_engine(backend.settings(pool_size=1, max_overflow=0))
    reader = Reader(engine, in_transactions=backend.through_pooler)
    sleep = "SELECT pg_sleep(30)" if backend.name == "postgresql" else "SELECT SLEEP(30)"
    try:
        read = asyncio.create_task(reader.scalar_one(text(sleep)))
        for _ in range(200):
            if engine.sync_engine.pool.checkedout() == 1:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        statement = "pg_sleep" if backend.name == "postgresql" else "SLEEP(30)"
        await until(
            lambda: server_session_waits(backend, TEST_APPLICATION_NAME, statement),
            within=10,
            what="the read to run at the server",
        )
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(read, 5)
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # The pool's one connection serves the next read at once, not after the sleep.
        assert await asyncio.wait_for(reader.scalar_one(text("SELECT 2")), 5) == 2
    finally:
        await engine.dispose()
