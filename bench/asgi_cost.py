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
- on PostgreSQL, `GET /health/live` and `GET /products/{id}` of bench/baselines/
  raw_asyncpg.py (the raw-driver ceiling) and of the two floors of
  bench/baselines/fastapi_floor.py (the least FastAPI can do for those reads, over
  asyncpg and over SQLAlchemy Core; their `GET /products?limit=20` too), so that what
  FastAPI, SQLAlchemy and catalog each add shows.

This is the part of a request that catalog's code decides; uvicorn's HTTP work comes on
top, about the same for every app. The time includes the kernel's share of each socket
send to the database, which a sequential ping-pong makes larger than under load: compare
the rows with each other, not with requests/s under wrk.
"""

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from common import SERVER_URLS, seeded_schema
from sqlalchemy.engine import make_url

from catalog.config import Settings
from catalog.main import create_app

BASELINES = Path(__file__).resolve().parent / "baselines"
PRODUCT_SQL = (
    "SELECT id, sku, name, description, price, stock, category, version, created_at, "
    "updated_at FROM products WHERE id = $1"
)
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _baseline(name: str) -> Any:
    """The module of bench/baselines/<name>.py (its settings come from os.environ)."""
    spec = importlib.util.spec_from_file_location(name, BASELINES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def get(
    app: App, path: str, query: str = "", headers: tuple[tuple[bytes, bytes], ...] = ()
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One GET through `app` as ASGI (with these headers besides Host and Accept: */*,
    which a header of the same name replaces); its status, headers and body."""
    given = dict(headers)
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
        "headers": [(b"host", b"bench"), (b"accept", given.pop(b"accept", b"*/*")), *given.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status, answered, chunks = 0, {}, []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answered
        if message["type"] == "http.response.start":
            status = message["status"]
            answered = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, answered, b"".join(chunks)


async def call(
    app: App, path: str, query: str = "", headers: tuple[tuple[bytes, bytes], ...] = ()
) -> int:
    """One GET through `app` (with these headers besides Host and Accept); returns the
    status."""
    status, _, _ = await get(app, path, query, headers)
    return status


async def _read_one(app: App, products: int) -> int:
    return await call(app, f"/products/{random.randint(1, products)}")


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
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(catalog_app.router.lifespan_context(catalog_app))
        cases["catalog /health/live"] = functools.partial(call, catalog_app, "/health/live")
        cases["catalog /products/{id}"] = functools.partial(_read_one, catalog_app, products)
        cases["catalog /products?limit=20"] = functools.partial(
            call, catalog_app, "/products", "limit=20"
        )
        if make_url(url).get_backend_name() == "postgresql":
            dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
            os.environ["RAW_DATABASE_URL"] = dsn
            os.environ["FLOOR_DATABASE_URL"] = url
            floors = _baseline("fastapi_floor")
            apps = {
                "raw asyncpg": _baseline("raw_asyncpg").app,
                "FastAPI asyncpg": floors.on_asyncpg,
                "FastAPI SQLAlchemy": floors.on_sqlalchemy,
            }
            for name, app in apps.items():
                await stack.enter_async_context(app.router.lifespan_context(app))
                cases[f"{name} /health/live"] = functools.partial(call, app, "/health/live")
                cases[f"{name} /products/{{id}}"] = functools.partial(_read_one, app, products)
                if name != "raw asyncpg":
                    cases[f"{name} /products?limit=20"] = functools.partial(
                        call, app, "/products", "limit=20"
                    )
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
        print(f"  {name:<40} {statistics.median(values):8.0f}")


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
