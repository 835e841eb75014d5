"""Baseline 3, the ceiling: the same single-row read on Starlette with a raw asyncpg
pool and a prepared statement; no ORM, no validation, no dependency injection.

    RAW_DATABASE_URL=postgresql://postgres@127.0.0.1/catalog_bench \\
        uvicorn raw_asyncpg:app --app-dir bench/baselines

The pool is as large as catalog's (5 + 5 = 10 connections).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PRODUCT = (
    "SELECT id, sku, name, description, price, stock, category, version, created_at, "
    "updated_at FROM products WHERE id = $1"
)


async def _keep_as_is(_connection: asyncpg.Connection) -> None:
    # asyncpg resets a released connection by default (RESET ALL, UNLISTEN, ...): a
    # second round trip per request. A pool that only ever runs this SELECT needs none.
    return None


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["RAW_DATABASE_URL"], min_size=10, max_size=10, reset=_keep_as_is
    )
    yield
    await app.state.pool.close()


async def live(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def product(request: Request) -> JSONResponse:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as connection:
        # asyncpg's statement cache prepares it once per connection; after that a read
        # is Bind + Execute + Sync in one round trip.
        row = await connection.fetchrow(PRODUCT, int(request.path_params["product_id"]))
    if row is None:
        return JSONResponse({"detail": "Product not found"}, status_code=404)
    return JSONResponse(
        {
            "id": row["id"],
            "sku": row["sku"],
            "name": row["name"],
            "description": row["description"],
            "price": str(row["price"]),
            "stock": row["stock"],
            "category": row["category"],
            "version": row["version"],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
        }
    )


app = Starlette(
    routes=[Route("/health/live", live), Route("/products/{product_id:int}", product)],
    lifespan=lifespan,
)
