"""What one primary-key read costs through each layer, from the driver up to the ORM session.

    python bench/read_paths.py [--backend postgresql|sqlite] [--products 10000]
                               [--reads 3000] [--rounds 3] [--sqlite-driver inline|aiosqlite]

On a fresh schema with --products demo products (PostgreSQL: CATALOG_TEST_POSTGRESQL_URL;
SQLite: a file in a temporary directory), one coroutine reads random products by id, one
after the other, and serializes each as ProductRead JSON, through:

- the driver alone: asyncpg's own pool, `fetchrow` (the raw-driver ceiling of
  bench/baselines/raw_asyncpg.py); on SQLite, the tutorial's way instead: a sync
  `Session.get` on sqlite3, called inline;
- catalog's own read path, what `GET /products/{id}` runs: `products.service.read` on
  the app's `Reader` (a Core select built once, on a connection borrowed for it;
  autocommit on PostgreSQL, writes refused);
- SQLAlchemy `AsyncConnection.execute` of the same kind of select, on the plain engine
  (autocommit on PostgreSQL), without catalog's checks;
- `AsyncSession.execute` of the same Core select, on a session (autocommit on PostgreSQL);
- `AsyncSession.execute` of an ORM select;
- `AsyncSession.get`, which `GET /products/{id}` used until 2026-11-24.

It prints the CPU time of this process per read (time.process_time), the median of
--rounds rounds run in turn. The time includes the kernel's share of each socket send,
which a sequential ping-pong makes larger than under load; compare the rows with each
other, not with requests/s under wrk.
"""

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from common import SERVER_URLS, seeded_schema
from sqlalchemy import bindparam, select
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.db.session import Reader
from catalog.products import service as product_service
from catalog.products.models import Product
from catalog.products.schemas import ProductRead

COLUMNS = "id, sku, name, description, price, stock, category, version, created_at, updated_at"


async def cpu_us_per_read(read: Callable[[], Awaitable[None]], reads: int) -> float:
    for _ in range(reads // 10):  # warm-up: prepared statements, compiled cache
        await read()
    started = time.process_time()
    for _ in range(reads):
        await read()
    return (time.process_time() - started) / reads * 1e6


async def measure(url: str, products: int, reads: int, rounds: int) -> None:
    await seeded_schema(url, products)
    engine = create_engine(Settings(database_url=url))
    reader = Reader(engine)
    table = Product.__table__
    core = select(*table.c).where(table.c.id == bindparam("id"))
    orm = select(Product).where(Product.id == bindparam("id"))
    backend = make_url(url).get_backend_name()
    pool, sync_engine, autocommit = None, None, engine
    if backend == "postgresql":
        dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        pool = await asyncpg.create_pool(dsn, min_size=5, max_size=5)
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        sync_engine = create_sync_engine(make_url(url).set(drivername="sqlite"))
    read_session = async_sessionmaker(autocommit, expire_on_commit=False, autoflush=False)

    def some_id() -> int:
        return random.randint(1, products)

    async def raw_asyncpg() -> None:
        assert pool is not None
        async with pool.acquire() as connection:
            row = await connection.fetchrow(
                f"SELECT {COLUMNS} FROM products WHERE id = $1", some_id()
            )
            ProductRead.model_validate(dict(row)).model_dump_json()

    async def sync_session_get() -> None:
        with Session(sync_engine) as session:
            product = session.get(Product, some_id())
            ProductRead.model_validate(product).model_dump_json()

    async def catalog_read() -> None:
        product = await product_service.read(reader=reader, product_id=some_id())
        product.model_dump_json()

    async def async_connection() -> None:
        async with autocommit.connect() as connection:
            row = (await connection.execute(core, {"id": some_id()})).mappings().one()
            ProductRead.model_validate(row).model_dump_json()

    async def session_core() -> None:
        async with read_session() as session:
            row = (await session.execute(core, {"id": some_id()})).mappings().one()
            ProductRead.model_validate(row).model_dump_json()

    async def session_orm() -> None:
        async with read_session() as session:
            product = (await session.execute(orm, {"id": some_id()})).scalar_one()
            ProductRead.model_validate(product).model_dump_json()

    async def session_get() -> None:
        async with read_session() as session:
            product = await session.get(Product, some_id())
            ProductRead.model_validate(product).model_dump_json()

    driver_path: tuple[str, Callable[[], Awaitable[None]]] = (
        ("asyncpg pool, fetchrow", raw_asyncpg)
        if pool is not None
        else ("sync Session.get on sqlite3, inline (the tutorial's way)", sync_session_get)
    )
    paths = {
        driver_path[0]: driver_path[1],
        "catalog's Reader, service.read (GET /products/{id})": catalog_read,
        "AsyncConnection, Core select": async_connection,
        "AsyncSession, Core select": session_core,
        "AsyncSession, ORM select": session_orm,
        "AsyncSession.get (GET /products/{id} until 2026-11-24)": session_get,
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for _ in range(rounds):
            for name, read in paths.items():
                samples[name].append(await cpu_us_per_read(read, reads))
    finally:
        if pool is not None:
            await pool.close()
        if sync_engine is not None:
            sync_engine.dispose()
        await engine.dispose()
    print(f"| {make_url(url).drivername} read path | CPU µs per read (median of {rounds}) |")
    print("|---|---:|")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sqlite-driver", choices=["inline", "aiosqlite"], default="inline",
        help="sqlite+inline (catalog's default) or sqlite+aiosqlite",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        url = (
            SERVER_URLS["postgresql"]
            if args.backend == "postgresql"
            else f"sqlite+{args.sqlite_driver}:///{Path(workdir) / 'read_paths.db'}"
        )
        asyncio.run(measure(url, args.products, args.reads, args.rounds))


if __name__ == "__main__":
    main()
