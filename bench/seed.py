"""Seeding rate: `catalog seed`'s fast path against adding ORM objects one by one.

    python bench/seed.py [--products 1000000] [--orm-products 5000] [--backends ...]

Per backend: a fresh schema (with its text index), then the fast path (PostgreSQL COPY,
executemany batches elsewhere) for --products rows, then, into an empty table again,
the tutorial way: one ORM object added and committed per row in a session, for
--orm-products rows. Prints rows/s of both and their ratio.
"""

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import database_url, fresh_schema, seeded_schema

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.db.session import create_sessionmaker
from catalog.products.models import Product
from catalog.products.seed import demo_products


async def fast(url: str, count: int) -> float:
    return count / await seeded_schema(url, count)


async def orm_one_by_one(url: str, count: int) -> float:
    await fresh_schema(url)
    engine = create_engine(Settings(database_url=url))
    sessionmaker = create_sessionmaker(engine)
    try:
        started = time.perf_counter()
        for row in demo_products(count, seed=1):
            async with sessionmaker() as session:
                session.add(Product(**row))
                await session.commit()
        return count / (time.perf_counter() - started)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["postgresql", "sqlite", "mariadb"])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--orm-products", type=int, default=5000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    print(f"fast path: {args.products:,} rows; ORM one by one: {args.orm_products:,} rows\n")
    print("| backend | fast path rows/s | ORM one-by-one rows/s | ratio |")
    print("|---|---:|---:|---:|")
    for backend in args.backends:
        url = database_url(backend, workdir)
        orm = asyncio.run(orm_one_by_one(url, args.orm_products))
        rate = asyncio.run(fast(url, args.products))
        print(f"| {backend} | {rate:,.0f} | {orm:,.0f} | {rate / orm:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
