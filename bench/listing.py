"""GET /products on a million products: deep pages, the dinosaur query, query plans.

    python bench/listing.py [--backends postgresql sqlite mariadb] [--products 1000000]
                            [--reuse] [--seconds 10] [--connections 16]
                            [--workers 1 2]

Per backend: a fresh schema seeded with --products demo products (`catalog seed`'s
path; --reuse keeps a database that already holds exactly that many), then a real
`catalog serve` (one worker):

1. Deep pages. Per sort, the median of 50 sequential requests for the first page
   (limit=20), and for a page 10,000 pages deep (row 200,000), reached by walking the
   cursors at limit=200. For contrast the same depth by OFFSET, which the API caps at
   10,000 rows, so it is timed as the SQL itself (the API's statement, OFFSET 200,000).
2. Concurrency: wrk with --connections clients on the dinosaur query and on a
   price-range + category page; requests/s, p50, p99, non-2xx; once per --workers.
3. Query plans of both queries (PostgreSQL EXPLAIN ANALYZE, SQLite EXPLAIN QUERY PLAN,
   MariaDB ANALYZE), printed after the tables.
Needs wrk (Debian package `wrk`).
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from common import database_url, run_wrk, seeded_schema, served
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.db.session import create_sessionmaker
from catalog.products import repository
from catalog.products.repository import count_all
from catalog.products.schemas import ProductFilters, ProductSort

DEPTH_ROWS = 200_000  # 10,000 pages of 20
SORTS = ("id", "name", "price", "-created_at")
QUERIES = {
    "dinosaur": "q=dinosaur&created_after=2020-01-01T00:00:00Z&sort=-created_at&limit=20",
    "price+category": "category=books&price_min=10&price_max=20&sort=price&limit=20",
}


def median_ms(client: httpx.Client, path: str, params: dict[str, Any], times: int = 50) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def cursor_at(client: httpx.Client, sort: str, rows: int) -> str:
    """The cursor that starts at row `rows` of `sort`, walked to 200 rows at a time."""
    cursor = None
    for _ in range(rows // 200):
        params: dict[str, Any] = {"sort": sort, "limit": 200}
        if cursor is not None:
            params["cursor"] = cursor
        cursor = client.get("/products", params=params).raise_for_status().json()["next_cursor"]
    assert cursor is not None
    return cursor


async def offset_sql_ms(engine: AsyncEngine, sort: str, offset: int) -> float:
    """The API's own listing statement at `offset`, timed in the database (median of 5)."""
    sessionmaker = create_sessionmaker(engine)
    samples = []
    for _ in range(5):
        async with sessionmaker() as session:
            started = time.perf_counter()
            await repository.list_page(
                session, filters=ProductFilters(), sort=ProductSort(sort), limit=21, offset=offset
            )
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def deep_pages(base_url: str, url: str, depth: int) -> list[str]:
    lines = [
        f"| sort | first page ms | cursor page {depth // 20:,} ms | ratio "
        f"| OFFSET {depth:,} (SQL) ms |",
        "|---|---:|---:|---:|---:|",
    ]
    engine = create_engine(Settings(database_url=url, statement_timeout=120), pooled=False)
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for sort in SORTS:
            first = median_ms(client, "/products", {"sort": sort, "limit": 20})
            cursor = cursor_at(client, sort, depth)
            deep = median_ms(client, "/products", {"sort": sort, "limit": 20, "cursor": cursor})
            offset = asyncio.run(offset_sql_ms(engine, sort, depth))
            lines.append(
                f"| {sort} | {first:.1f} | {deep:.1f} | {deep / first:.2f}x | {offset:.0f} |"
            )
    asyncio.run(engine.dispose())
    return lines


def under_load(base_url: str, args: argparse.Namespace, workdir: Path) -> list[str]:
    lines = [
        "| query | clients | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, query in QUERIES.items():
        script = workdir / f"{name}.lua"
        script.write_text(f'wrk.path = "/products?{query}"\n')
        run_wrk(base_url, script, 2, args.connections)  # warm-up
        result = run_wrk(base_url, script, args.seconds, args.connections)
        lines.append(
            f"| {name} | {args.connections} | {result['rps']:.0f} | {result['p50']:.1f} "
            f"| {result['p99']:.1f} | {result['non2xx']:.0f} |"
        )
    return lines


async def plans(url: str) -> list[str]:
    """Each query's plan as the database ran it, with the app's own SQL."""
    engine = create_engine(Settings(database_url=url, statement_timeout=120), pooled=False)
    captured: list[Any] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(
        _conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if context.compiled is not None and "products" in _sql:
            captured.append(context.compiled.statement)

    filters = {
        "dinosaur": (
            ProductFilters(q="dinosaur", created_after=datetime(2020, 1, 1, tzinfo=UTC)),
            ProductSort("-created_at"),
        ),
        "price+category": (
            ProductFilters(category="books", price_min=Decimal(10), price_max=Decimal(20)),
            ProductSort("price"),
        ),
    }
    dialect = engine.dialect
    explain = {
        "postgresql": "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ",
        "sqlite": "EXPLAIN QUERY PLAN ",
        "mysql": "ANALYZE ",
        "mariadb": "ANALYZE ",
    }[dialect.name]
    lines: list[str] = []
    sessionmaker = create_sessionmaker(engine)
    for name, (query_filters, sort) in filters.items():
        captured.clear()
        async with sessionmaker() as session:
            await repository.list_page(session, filters=query_filters, sort=sort, limit=21)
        sql = str(captured[-1].compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        async with engine.connect() as connection:
            result = await connection.execute(text(explain + sql))
            rows = [tuple(result.keys()), *result.all()]
        if dialect.name == "postgresql":
            rows = rows[1:]  # one column, QUERY PLAN
        lines += [f"{dialect.name}, {name}:", "", "```sql", sql, "```", "", "```"]
        lines += [" | ".join(str(value) for value in row) for row in rows]
        lines += ["```", ""]
    await engine.dispose()
    return lines


async def prepare(url: str, products: int, reuse: bool) -> None:
    engine = create_engine(Settings(database_url=url, statement_timeout=600), pooled=False)
    try:
        if reuse and await count_all(engine) == products:
            return
    except DBAPIError:
        pass  # no schema yet: make one
    finally:
        await engine.dispose()
    took = await seeded_schema(url, products)
    print(f"seeded {products:,} in {took:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["postgresql", "sqlite", "mariadb"])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for backend in args.backends:
        url = database_url(backend, workdir)
        asyncio.run(prepare(url, args.products, args.reuse))
        print(f"\n## {backend}, {args.products:,} products\n", flush=True)
        env = {"CATALOG_DATABASE_URL": url, "CATALOG_POOL_TIMEOUT": "30"}
        with served(env) as base_url:
            depth = min(DEPTH_ROWS, args.products // 400 * 200)
            print("\n".join(deep_pages(base_url, url, depth)), "\n", flush=True)
        for workers in args.workers:
            with served(env, workers) as base_url:
                print(f"{workers} worker(s):\n", flush=True)
                print("\n".join(under_load(base_url, args, workdir)), "\n", flush=True)
        print("\n".join(asyncio.run(plans(url))), flush=True)


if __name__ == "__main__":
    main()
