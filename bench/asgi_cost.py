"""What a whole request costs inside the app: CPU per request, ASGI in, ASGI out, no sockets.

    python bench/asgi_cost.py [--backend postgresql|sqlite] [--products 10000]
                              [--requests 3000] [--rounds 5]

On a fresh schema with --products demo products (PostgreSQL: CATALOG_TEST_POSTGRESQL_URL,
whose tables are dropped and rebuilt; SQLite: a file in a temporary directory), each app
is called directly as ASGI (scope, receive, send: no HTTP parsing, no client), one request
after the other, and the CPU time of this process per request is printed: the median of
--rounds rounds, the apps measured in turn within each round so that a drifting machine
moves them all alike. Apps and paths:

- catalog (`create_app()`): `GET /health/live`, `GET /products/{id}` (random ids) and
  `GET /products?limit=20`;
- on PostgreSQL, bench/baselines/raw_asyncpg.py, the raw-driver ceiling:
  `GET /health/live` and `GET /products/{id}`;
- on PostgreSQL, two floors, `GET /products/{id}` only, built below as the least a
  FastAPI app can do for that read, so that catalog's own share shows: FastAPI with an
  asyncpg pool (a path parameter, `fetchrow`, a `ProductRead` response model), and
  FastAPI with SQLAlchemy Core (the same, but `AsyncEngine.connect()` in autocommit and
  the select of `products.repository`, with SQLAlchemy's own pool; no middleware, no
  metrics, no dependency).

This is the part of a request that catalog's code decides; uvicorn's HTTP work comes on
top, about the same for every app. The time includes the kernel's share of each socket
send to the database, which a sequential ping-pong makes larger than under load: compare
the rows with each other, not with requests/s under wrk.
"""

import argparse
import asyncio
import contextlib
import importlib.util
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from common import SERVER_URLS, seeded_schema
from fastapi import FastAPI
from sqlalchemy import bindparam, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from catalog.config import Settings
from catalog.main import create_app
from catalog.products.models import Product
from catalog.products.schemas import ProductRead

BASELINES = Path(__file__).resolve().parent / "baselines"
PRODUCT_SQL = (
    "SELECT id, sku, name, description, price, stock, category, version, created_at, "
    "updated_at FROM products WHERE id = $1"
)
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _floor_apps(url: str, dsn: str) -> tuple[FastAPI, FastAPI]:
    """FastAPI over asyncpg, and FastAPI over SQLAlchemy Core: nothing else."""
    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def pool_lifespan(_app: FastAPI) -> AsyncIterator[None]:
        holder["pool"] = await asyncpg.create_pool(dsn, min_size=10, max_size=10, reset=None)
        yield
        await holder["pool"].close()

    on_asyncpg = FastAPI(lifespan=pool_lifespan)

    @on_asyncpg.get("/products/{product_id}")
    async def by_asyncpg(product_id: int) -> ProductRead:
        async with holder["pool"].acquire() as connection:
            row = await connection.fetchrow(PRODUCT_SQL, product_id)
        return ProductRead.model_validate(dict(row))

    @contextlib.asynccontextmanager
    async def engine_lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(url, pool_size=5, max_overflow=5)
        holder["engine"] = engine.execution_options(isolation_level="AUTOCOMMIT")
        yield
        await engine.dispose()

    on_sqlalchemy = FastAPI(lifespan=engine_lifespan)
    by_id = select(Product.__table__).where(Product.__table__.c.id == bindparam("product_id"))

    @on_sqlalchemy.get("/products/{product_id}")
    async def by_sqlalchemy(product_id: int) -> ProductRead:
        async with holder["engine"].connect() as connection:
            row = (await connection.execute(by_id, {"product_id": product_id})).one()
        return ProductRead.model_validate(row)

    return on_asyncpg, on_sqlalchemy


def _load_raw_baseline() -> Any:
    spec = importlib.util.spec_from_file_location("raw_asyncpg", BASELINES / "raw_asyncpg.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


async def call(app: App, path: str, query: str = "") -> int:
    """One GET through `app`; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def cpu_us_per_request(
    request: Callable[[], Awaitable[int]], requests: int, concurrency: int
) -> float:
    async def client(count: int) -> None:
        for _ in range(count):
            await request()

    started = time.process_time()
    await asyncio.gather(*(client(requests // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (requests // concurrency * concurrency) * 1e6


async def measure(url: str, products: int, requests: int, rounds: int, concurrency: int) -> None:
    await seeded_schema(url, products)
    catalog_app = create_app(Settings(database_url=url))
    cases: dict[str, Callable[[], Awaitable[int]]] = {}

    def some_id() -> str:
        return f"/products/{random.randint(1, products)}"

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(catalog_app.router.lifespan_context(catalog_app))
        cases["catalog /health/live"] = lambda: call(catalog_app, "/health/live")
        cases["catalog /products/{id}"] = lambda: call(catalog_app, some_id())
        cases["catalog /products?limit=20"] = lambda: call(catalog_app, "/products", "limit=20")
        if make_url(url).get_backend_name() == "postgresql":
            dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
            os.environ["RAW_DATABASE_URL"] = dsn
            raw_app = _load_raw_baseline()
            await stack.enter_async_context(raw_app.router.lifespan_context(raw_app))
            cases["raw asyncpg /health/live"] = lambda: call(raw_app, "/health/live")
            cases["raw asyncpg /products/{id}"] = lambda: call(raw_app, some_id())
            on_asyncpg, on_sqlalchemy = _floor_apps(url, dsn)
            for floor in (on_asyncpg, on_sqlalchemy):
                await stack.enter_async_context(floor.router.lifespan_context(floor))
            cases["FastAPI+asyncpg /products/{id}"] = lambda: call(on_asyncpg, some_id())
            cases["FastAPI+SQLAlchemy /products/{id}"] = lambda: call(on_sqlalchemy, some_id())
        for name, case in cases.items():  # warm up, and check every app answers
            for _ in range(300):
                status = await case()
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}")
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, case in cases.items():
                samples[name].append(await cpu_us_per_request(case, requests, concurrency))
    print(f"CPU µs per request, {concurrency} at a time, median of {rounds} rounds of {requests}:")
    for name, values in samples.items():
        print(f"  {name:<32} {statistics.median(values):8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (default 1)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if args.backend == "sqlite":
            url = f"sqlite+inline:///{Path(workdir) / 'bench.db'}"
        else:
            url = SERVER_URLS["postgresql"]
        # uvicorn[standard] serves on uvloop: measure on it too.
        uvloop.run(measure(url, args.products, args.requests, args.rounds, args.concurrency))


if __name__ == "__main__":
    main()
