"""Which driver setting to use behind PgBouncer in transaction mode: a one-row select
through SQLAlchemy Core, in turns, directly and through the pooler.

    python bench/pooler_drivers.py [--rounds 3] [--reads 3000] [--clients 4]

Starts its own PostgreSQL and PgBouncer (tests/throwaway.py), never the shared ones.
Measured, each round in turns:
- asyncpg direct, autocommit, statements cached (catalog's public reads, direct);
- asyncpg through PgBouncer in transactions, no statement cache ("in transactions":
  catalog behind the pooler, CATALOG_DATABASE_POOLER=transaction);
- asyncpg direct with those same settings (what the settings cost without the pooler);
- psycopg 3 through PgBouncer in autocommit, prepare_threshold=None (one round trip per
  statement: parse, bind and execute are sent together).
Reads per second, by the best of each round's clients working at once.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.throwaway import ThrowawayPgBouncer, ThrowawayPostgres

QUERY = text("SELECT id, sku, name, price, stock FROM bench_rows WHERE id = :id")


async def rate(url: str, autocommit: bool, reads: int, clients: int, **connect: Any) -> float:
    engine = create_async_engine(url, connect_args=connect, pool_size=clients, max_overflow=0)
    runner = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine

    async def one() -> None:
        async with runner.connect() as connection:
            (await connection.execute(QUERY, {"id": 1})).one()

    try:
        for _ in range(200):  # warm-up: connections, statements
            await one()

        async def client() -> None:
            for _ in range(reads // clients):
                await one()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return reads / (time.perf_counter() - started)
    finally:
        await engine.dispose()


async def measure(args: argparse.Namespace, direct: str, pooled: str) -> None:
    no_cache = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    ways = [
        ("asyncpg direct, autocommit", f"postgresql+asyncpg://{direct}", True, {}),
        (
            "asyncpg PgBouncer, transactions, no cache",
            f"postgresql+asyncpg://{pooled}",
            False,
            no_cache,
        ),
        (
            "asyncpg direct, transactions, no cache",
            f"postgresql+asyncpg://{direct}",
            False,
            no_cache,
        ),
        (
            "psycopg PgBouncer, autocommit, prepare_threshold=None",
            f"postgresql+psycopg://{pooled}",
            True,
            {"prepare_threshold": None},
        ),
    ]
    results: dict[str, list[float]] = {name: [] for name, *_ in ways}
    for round_number in range(1, args.rounds + 1):
        for name, url, autocommit, connect in ways:
            results[name].append(await rate(url, autocommit, args.reads, args.clients, **connect))
        print(f"  round {round_number}: " + ", ".join(f"{v[-1]:.0f}" for v in results.values()))
    print(f"\n{args.clients} clients, {args.reads} reads per round, {args.rounds} rounds\n")
    print("| way | reads/s per round |")
    print("|---|---|")
    for name, values in results.items():
        print(f"| {name} | {' / '.join(f'{value:,.0f}' for value in values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    database = ThrowawayPostgres(Path())
    database.start()
    bouncer = ThrowawayPgBouncer(database.port, pool_size=4)
    try:
        bouncer.start()
        database_url = f"postgres@127.0.0.1:{database.port}/postgres"
        create = (
            "CREATE TABLE bench_rows (id int PRIMARY KEY, sku text, name text,"
            " price numeric(12, 2), stock int);"
            " INSERT INTO bench_rows VALUES (1, 'SKU-1', 'A book', 24.90, 10)"
        )

        async def prepare() -> None:
            engine = create_async_engine(f"postgresql+asyncpg://{database_url}")
            async with engine.begin() as connection:
                for statement in create.split(";"):
                    await connection.execute(text(statement))
            await engine.dispose()

        asyncio.run(prepare())
        pooled = f"postgres@127.0.0.1:{bouncer.port}/postgres"
        asyncio.run(measure(args, database_url, pooled))
    finally:
        bouncer.stop()
        database.stop()


if __name__ == "__main__":
    main()
