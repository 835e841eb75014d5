"""PostgreSQL behind a real PgBouncer in transaction mode: what catalog must not send, the
timeouts the pooler's server connections get instead, requests beyond the pooler's server
pool, and the connection budget read from its admin console.

(The whole PostgreSQL suite also runs through a PgBouncer: the `pgbouncer` backend.)
"""

import asyncio
import time
from collections.abc import Iterator

import pytest
from asyncpg.exceptions import ProtocolViolationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from catalog.cli import app as cli
from catalog.config import Settings, get_settings
from catalog.db.engine import create_engine
from catalog.db.errors import is_unavailable
from catalog.main import create_app
from catalog.startup import StartupCheckError
from tests.conftest import Backend
from tests.helpers import (
    all_checked_in,
    assert_problem,
    product_payload,
    serving,
    settings_for,
    started,
)
from tests.throwaway import ThrowawayPgBouncer

# Each test starts a PgBouncer of its own in front of the migrated PostgreSQL test database.
pytestmark = pytest.mark.parametrize(
    "backend",
    [pytest.param("postgresql", marks=[pytest.mark.postgresql, pytest.mark.pgbouncer])],
    indirect=True,
)


class Bouncer:
    def __init__(self, direct: Backend, **options: int | None) -> None:
        url = make_url(direct.url)
        self.pooler = ThrowawayPgBouncer(url.port or 5432, **options)  # type: ignore[arg-type]
        self.url = self.pooler.url_for(url.database or "test")
        self.direct = direct

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_pooler": "transaction",
            "pooler_admin_url": self.pooler.admin_url,
        }
        return settings_for(self.url, **{**values, **overrides})


@pytest.fixture
def bouncer(backend: Backend, request: pytest.FixtureRequest) -> Iterator[Bouncer]:
    """A PgBouncer of the test's own; options from @pytest.mark.pooler(...)."""
    marker = request.node.get_closest_marker("pooler")
    made = Bouncer(backend, **(marker.kwargs if marker else {}))
    made.pooler.start()
    try:
        yield made
    finally:
        made.pooler.stop()


async def test_pgbouncer_refuses_the_timeouts_as_startup_parameters(bouncer: Bouncer) -> None:
    # Why the setting exists: the parameters catalog sends to a server directly.
    engine = create_engine(bouncer.settings(database_pooler="none"), pooled=False)
    try:
        # SQLAlchemy 2.1 wraps the driver's error at connect; 2.0 lets it through.
        with pytest.raises(
            (DBAPIError, ProtocolViolationError),
            match="unsupported startup parameter: statement_timeout",
        ):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


@pytest.mark.pooler(statement_timeout_ms=300)
async def test_a_statement_timeout_set_at_the_pooler_cancels_a_query(bouncer: Bouncer) -> None:
    engine = create_engine(bouncer.settings(), pooled=False)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "300ms"
            begun = time.monotonic()
            with pytest.raises(DBAPIError) as cancelled:
                await connection.execute(text("SELECT pg_sleep(10)"))
            took = time.monotonic() - begun
    finally:
        await engine.dispose()
    assert "canceling statement due to statement timeout" in str(cancelled.value)
    assert is_unavailable(cancelled.value)  # 503, not 500
    assert took < 3


@pytest.mark.pooler(pool_size=2, query_wait_timeout=1)
async def test_requests_beyond_the_poolers_server_pool_get_503_quickly_and_recover(
    bouncer: Bouncer,
) -> None:
    # The app's pool (10) is not the limit: the pooler's 2 server connections are, and
    # the two outsiders below hold them in open transactions.
    outsider = create_engine(bouncer.settings(pool_size=2))
    async with serving(bouncer.settings()) as (app, client):
        product = await client.post("/products", json=product_payload())
        assert product.status_code == 201
        holders = [await outsider.connect() for _ in range(2)]
        try:
            for holder in holders:
                await holder.execute(text("SELECT 1"))  # BEGIN: a server connection held
            begun = time.monotonic()
            response = await client.get(f"/products/{product.json()['id']}")
            took = time.monotonic() - begun
            assert_problem(response, 503)
            assert response.headers["retry-after"] == "1"
            # query_wait_timeout 1 s; PgBouncer checks it once a second.
            assert took < 1 + 1 + 1.5
        finally:
            for holder in holders:
                await holder.close()
        await outsider.dispose()
        # The pooler closed the waiting client; the pool replaces it on its own.
        for _ in range(3):
            assert (await client.get(f"/products/{product.json()['id']}")).status_code == 200
        await all_checked_in(app.state.engine.pool, within=2)


@pytest.mark.pooler(max_client_conn=20)
async def test_start_is_refused_when_the_pools_exceed_the_poolers_client_limit(
    bouncer: Bouncer,
) -> None:
    with pytest.raises(StartupCheckError) as refused:
        async with started(create_app(bouncer.settings(workers=3))):
            pass
    message = str(refused.value)
    assert "3 x (10 + 0) = 30 connections to the pooler, but its max_client_conn 20" in message
    assert "max_client_conn" in message


@pytest.mark.pooler(pool_size=500)
async def test_start_is_refused_when_the_poolers_server_pool_exceeds_max_connections(
    bouncer: Bouncer,
) -> None:
    with pytest.raises(StartupCheckError) as refused:
        async with started(create_app(bouncer.settings())):
            pass
    message = str(refused.value)
    assert "its server pool (pool_size 500 + reserve_pool 0 = 500) over the server's" in message
    assert "max_connections" in message


async def test_an_unreadable_admin_console_refuses_to_start(bouncer: Bouncer) -> None:
    settings = bouncer.settings(
        pooler_admin_url=bouncer.pooler.admin_url.replace("/pgbouncer", "/nosuchdb")
    )
    with pytest.raises(StartupCheckError, match="CATALOG_POOLER_ADMIN_URL"):
        async with started(create_app(settings)):
            pass


async def test_reads_run_inside_transactions_behind_the_pooler(bouncer: Bouncer) -> None:
    # Many concurrent reads of different shapes through 2 server connections: each
    # gets its own statement's rows (outside a transaction, the pooler could run one
    # client's bind on another client's unnamed statement).
    async with serving(bouncer.settings(pool_size=8)) as (_, client):
        for n in range(5):
            await client.post(
                "/products",
                json={
                    "sku": f"S{n}",
                    "name": f"N{n}",
                    "price": "1.00",
                    "stock": n,
                    "category": "c",
                },
            )
        listing = (await client.get("/products")).json()["items"]

        async def read(product: dict[str, object]) -> bool:
            one = (await client.get(f"/products/{product['id']}")).json()
            return one["sku"] == product["sku"]

        async def page() -> bool:
            return len((await client.get("/products", params={"limit": 3})).json()["items"]) == 3

        checks = [read(product) for product in listing for _ in range(10)] + [
            page() for _ in range(20)
        ]
        assert all(await asyncio.gather(*checks))


@pytest.fixture
def doctor_env(bouncer: Bouncer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bouncer]:
    monkeypatch.setenv("CATALOG_DATABASE_URL", bouncer.url)
    monkeypatch.setenv("CATALOG_DATABASE_POOLER", "transaction")
    monkeypatch.setenv("CATALOG_POOLER_ADMIN_URL", bouncer.pooler.admin_url)
    get_settings.cache_clear()
    yield bouncer
    get_settings.cache_clear()


def test_doctor_shows_the_pooler_and_both_limits(doctor_env: Bouncer) -> None:
    result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "PgBouncer 1." in result.output
    assert "pool_mode transaction, max_client_conn 200" in result.output
    assert "1 x (10 + 0) = 10 connections to the pooler, within its max_client_conn" in (
        result.output
    )
    assert "statement 30 s, idle in transaction 60 s" in result.output
    assert "WARNING" not in result.output


@pytest.mark.pooler(statement_timeout_ms=None)
def test_doctor_warns_when_the_pooler_leaves_out_the_timeouts(doctor_env: Bouncer) -> None:
    result = CliRunner().invoke(cli, ["doctor"], env={"COLUMNS": "250"})
    assert "WARNING" in result.output
    assert "no statement timeout" in result.output
    assert "connect_query" in result.output
