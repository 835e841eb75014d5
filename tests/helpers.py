"""Small helpers shared by the tests."""

import asyncio
import inspect
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool

from catalog.config import Settings
from catalog.db.base import utcnow
from catalog.db.engine import create_engine
from catalog.users.models import Role, User
from catalog.users.security import create_access_token

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tests.conftest import Backend

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Tells the test apps' connections apart from anything else at the server.
TEST_APPLICATION_NAME = f"catalog-test-{os.getpid()}"


def settings_for(database_url: str, /, **overrides: object) -> Settings:
    """Settings of a test's app on `database_url`: its sessions named for the tests,
    /metrics and /health/pool open (tests/test_operators.py checks they are closed by
    default), and the pages' categories read for every page, so that a test sees its
    own writes there (tests/web/test_pages.py checks the default's reuse)."""
    values: dict[str, object] = {
        "database_url": database_url,
        "application_name": TEST_APPLICATION_NAME,
        "metrics_public": True,
        "categories_ttl": 0,
        "result_counts_ttl": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def migrate(url: str) -> None:
    """Bring the database at `url` to the code's schema with the migrations."""
    from catalog.models import migrations

    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


def backend_params(*names: str) -> list[Any]:
    """pytest params for these backends, each with its own mark (`pytest -m sqlite`).

    PostgreSQL comes twice: directly, and through a real PgBouncer in transaction mode
    (`pgbouncer`, marked both `postgresql` and `pgbouncer`). MariaDB too: the shared
    server, and a node of a real 3-node Galera cluster (`galera`, marked `mariadb` and
    `galera`).
    """
    params = []
    for name in names:
        params.append(pytest.param(name, marks=getattr(pytest.mark, name), id=name))
        if name == "postgresql":
            marks = [pytest.mark.postgresql, pytest.mark.pgbouncer]
            params.append(pytest.param("pgbouncer", marks=marks, id="pgbouncer"))
        if name == "mariadb":
            marks = [pytest.mark.mariadb, pytest.mark.galera]
            params.append(pytest.param("galera", marks=marks, id="galera"))
    return params


def only_on(*names: str) -> pytest.MarkDecorator:
    """Run a test on these backends only (for behaviour that one dialect has)."""
    return pytest.mark.parametrize("backend", backend_params(*names), indirect=True)


async def pooler_clients(admin_url: str, application_name: str) -> int:
    """How many clients with this application_name PgBouncer has (its SHOW CLIENTS)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as console:
        cursor = await console.execute("SHOW CLIENTS")
        columns = [column.name for column in cursor.description or ()]
        rows = [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
    return sum(1 for row in rows if row["application_name"] == application_name)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def product_payload(sku: str = "SKU-1", **overrides: Any) -> dict[str, Any]:
    """A valid body for POST /products."""
    payload: dict[str, Any] = {
        "sku": sku,
        "name": "Field guide to dinosaurs",
        "description": "Every dinosaur, drawn to scale.",
        "price": "24.90",
        "stock": 10,
        "category": "books",
    }
    payload.update(overrides)
    return payload


@asynccontextmanager
async def products_locked(backend: "Backend") -> AsyncIterator[AsyncConnection]:
    """Lock the products table against writers from a connection outside the app."""
    outsider = create_engine(backend.settings(), pooled=False)
    try:
        async with outsider.connect() as connection:
            if backend.name == "postgresql":
                await connection.execute(text("LOCK TABLE products IN EXCLUSIVE MODE"))
            elif backend.name == "mariadb":
                await connection.execute(text("LOCK TABLES products WRITE"))
            else:
                await connection.exec_driver_sql("BEGIN EXCLUSIVE")
            yield connection
            if backend.name == "mariadb":
                await connection.execute(text("UNLOCK TABLES"))
            await connection.rollback()
    finally:
        await outsider.dispose()


# Any string serves: users made here never sign in with a password.
UNUSABLE_PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$unusable$unusable"


async def create_user(engine: AsyncEngine, email: str, *, admin: bool = False) -> int:
    """Insert a user directly (no argon2 cost) and return its id."""
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(User).values(
                email=email,
                password_hash=UNUSABLE_PASSWORD_HASH,
                role=(Role.ADMIN if admin else Role.CUSTOMER).value,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def bearer(user_id: int, settings: Settings) -> dict[str, str]:
    """An Authorization header with a fresh access token for `user_id`."""
    token, _ = create_access_token(user_id, settings)
    return {"Authorization": f"Bearer {token}"}


async def admin_headers(settings: Settings) -> dict[str, str]:
    """A new admin in the database of `settings`, and its Authorization header (for
    servers started from this directory, which sign with the same key file)."""
    engine = create_engine(settings, pooled=False)
    try:
        admin = await create_user(engine, f"admin-{uuid.uuid4().hex}@example.com", admin=True)
    finally:
        await engine.dispose()
    return bearer(admin, settings)


def started(app: "FastAPI") -> LifespanManager:
    """`app` started and, on leaving, stopped, as uvicorn does it. The bounds are
    generous: they only end a test that would hang. On a busy machine a start (a
    Galera node's first statement, say) has taken 8 s, past asgi-lifespan's 5 s."""
    return LifespanManager(app, startup_timeout=120, shutdown_timeout=120)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple["FastAPI", httpx.AsyncClient]]:
    """An app of its own, started, with a client signed in as a new admin."""
    from catalog.main import create_app

    app = create_app(settings)
    async with started(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://catalog.test",
            timeout=60,
            headers=await admin_headers(settings),
        ) as client:
            yield app, client


async def all_checked_in(pool: Pool, within: float) -> None:
    """Wait until no connection is checked out, failing after `within` seconds.

    Work given up on (an abandoned readiness probe, a cancelled request) closes its
    connection in the background, and closing one to a server that was frozen can take
    seconds: a leak is a connection that stays out past that, not one still closing.
    """
    drained = asyncio.Event()
    loop = asyncio.get_running_loop()

    def check() -> None:
        if pool.checkedout() == 0:
            drained.set()

    def on_checkin(*_: object) -> None:
        # "checkin" fires before the pool counts the connection as returned.
        loop.call_soon(check)

    event.listen(pool, "checkin", on_checkin)
    try:
        check()
        await asyncio.wait_for(drained.wait(), within)
    except TimeoutError:
        out = pool.checkedout()
        raise AssertionError(f"{out} connections still out after {within} s") from None
    finally:
        event.remove(pool, "checkin", on_checkin)


async def until(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    every: float = 0.02,
) -> None:
    """Wait until `condition()` holds, checking every `every` seconds; fail after
    `within` seconds, saying `what` was awaited. For states no event announces (a
    statement waiting on a lock at the server, a socket closed by another process)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within} s for {what}")
        await asyncio.sleep(every)


async def server_session_waits(backend: "Backend", application_name: str, on: str) -> bool:
    """Whether a session of `application_name` is at the server, waiting on a lock
    (`on="lock"`) or running a statement that contains `on`; PostgreSQL and MariaDB."""
    outsider = create_engine(backend.settings(), pooled=False)
    try:
        async with outsider.connect() as connection:
            if backend.name == "postgresql":
                sql = (
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
                    " AND pid <> pg_backend_pid() AND state = 'active' AND "
                    + ("wait_event_type = 'Lock'" if on == "lock" else "query LIKE :like")
                )
                found = await connection.scalar(
                    text(sql), {"app": application_name, "like": f"%{on}%"}
                )
            else:
                # MariaDB has no application name: any other session will do, tests run
                # one at a time against the server.
                sql = (
                    "SELECT count(*) FROM information_schema.processlist"
                    " WHERE id <> CONNECTION_ID() AND "
                    + ("state LIKE '%lock%'" if on == "lock" else "info LIKE :like")
                )
                found = await connection.scalar(text(sql), {"like": f"%{on}%"})
            return bool(found)
    finally:
        await outsider.dispose()
