"""Baselines 5 and 6, the floors: the least a FastAPI app can do for the one-row read.

    FLOOR_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1/catalog_bench \\
        uvicorn fastapi_floor:on_sqlalchemy --app-dir bench/baselines
    FLOOR_DATABASE_URL=... uvicorn fastapi_floor:on_asyncpg --app-dir bench/baselines

`GET /products/{product_id}` (an `int` path parameter, a `ProductRead` response model),
`GET /products?limit=20` (the first `limit` products by id, a `list[ProductRead]`) and
`GET /health/live`, and nothing else: no middleware, no metrics, no error format, no
dependency. `on_sqlalchemy` reads through SQLAlchemy Core the way its asyncio docs show
(`async with engine.connect()`, `await connection.execute(select)`, in autocommit so
that a read is one round trip, the select built once); `on_asyncpg` through an asyncpg
pool, as bench/baselines/raw_asyncpg.py does but on FastAPI. Both pools hold 10
connections, as catalog's does (5 + 5).

Between raw_asyncpg.py and catalog, they split the cost of a read into what FastAPI
takes (raw asyncpg → on_asyncpg), what SQLAlchemy's execution takes (→ on_sqlalchemy)
and what catalog adds on top of both (→ catalog). Not code to copy: a yardstick.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal

import asyncpg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

URL = os.environ["FLOOR_DATABASE_URL"]

products = Table(
    "products",
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("sku", String(64)),
    Column("name", String(200)),
    Column("description", Text),
    Column("price", Numeric(12, 2)),
    Column("stock", Integer),
    Column("category", String(100)),
    Column("version", Integer),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)
BY_ID = select(products).where(products.c.id == bindparam("product_id"))
FIRST_BY_ID = select(products).order_by(products.c.id).limit(bindparam("limit"))
FIRST_BY_ID_SQL = (
    "SELECT id, sku, name, description, price, stock, category, version, created_at, "
    "updated_at FROM products ORDER BY id LIMIT $1"
)
BY_ID_SQL = (
    "SELECT id, sku, name, description, price, stock, category, version, created_at, "
    "updated_at FROM products WHERE id = $1"
)


class ProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    description: str
    price: Decimal
    stock: int
    category: str | None
    created_at: datetime
    updated_at: datetime
    version: int


@asynccontextmanager
async def engine_lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = create_async_engine(URL, pool_size=5, max_overflow=5)
    app.state.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    yield
    await engine.dispose()


on_sqlalchemy = FastAPI(lifespan=engine_lifespan)


@on_sqlalchemy.get("/products/{product_id}")
async def read_through_sqlalchemy(product_id: int) -> ProductRead:
    engine: AsyncEngine = on_sqlalchemy.state.engine
    async with engine.connect() as connection:
        row = (await connection.execute(BY_ID, {"product_id": product_id})).one_or_none()
    if row is None:
        raise HTTPException(404, "Product not found")
    return ProductRead.model_validate(row)


async def _keep_as_is(_connection: asyncpg.Connection) -> None:
    # No RESET ALL round trip when a connection goes back (as in raw_asyncpg.py).
    return None


@on_sqlalchemy.get("/products")
async def page_through_sqlalchemy(limit: int = 20) -> list[ProductRead]:
    engine: AsyncEngine = on_sqlalchemy.state.engine
    async with engine.connect() as connection:
        rows = (await connection.execute(FIRST_BY_ID, {"limit": limit})).all()
    return [ProductRead.model_validate(row) for row in rows]


@asynccontextmanager
async def pool_lifespan(app: FastAPI) -> AsyncIterator[None]:
    dsn = make_url(URL).set(drivername="postgresql").render_as_string(False)
    app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10, reset=_keep_as_is)
    yield
    await app.state.pool.close()


on_asyncpg = FastAPI(lifespan=pool_lifespan)


@on_asyncpg.get("/products/{product_id}")
async def read_through_asyncpg(product_id: int) -> ProductRead:
    pool: asyncpg.Pool = on_asyncpg.state.pool
    async with pool.acquire() as connection:
        row = await connection.fetchrow(BY_ID_SQL, product_id)
    if row is None:
        raise HTTPException(404, "Product not found")
    return ProductRead.model_validate(dict(row))


@on_asyncpg.get("/products")
async def page_through_asyncpg(limit: int = 20) -> list[ProductRead]:
    pool: asyncpg.Pool = on_asyncpg.state.pool
    async with pool.acquire() as connection:
        rows = await connection.fetch(FIRST_BY_ID_SQL, limit)
    return [ProductRead.model_validate(dict(row)) for row in rows]


@on_sqlalchemy.get("/health/live")
@on_asyncpg.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
