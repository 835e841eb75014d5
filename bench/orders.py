"""Placed orders per second under contention, through the real app and pool.

    python bench/orders.py [--backends postgresql sqlite mariadb] [--seconds 8]

Every order buys 1-3 of the same 5 hot products (1-3 units each, listed in random
order), so concurrent orders queue on the same rows: the guarded stock updates, row
locks (SQLite: the database lock), deadlock-free id ordering and the commit are what is
measured. Stock is large enough that orders succeed. wrk, 2 threads, 32 connections,
one uvicorn worker with the default pool (5 + 5). Checks afterwards that stock sold
equals the quantities in placed orders.
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path

from common import admin_token, database_url, fresh_schema, run_wrk, served
from sqlalchemy import func, insert, select

from catalog.config import Settings
from catalog.db.base import utcnow
from catalog.db.engine import create_engine
from catalog.orders.models import Order, OrderLine
from catalog.products.models import Product

HOT = 5
STOCK = 10_000_000
SCRIPT = """
math.randomseed(os.time() + os.clock() * 1000000)
request = function()
  local ids = {1, 2, 3, 4, 5}
  for i = #ids, 2, -1 do
    local j = math.random(i)
    ids[i], ids[j] = ids[j], ids[i]
  end
  local lines = {}
  for i = 1, math.random(1, 3) do
    lines[i] = '{"product_id": ' .. ids[i] .. ', "quantity": ' .. math.random(1, 3) .. '}'
  end
  local body = '{"items": [' .. table.concat(lines, ", ") .. ']}'
  return wrk.format("POST", "/orders", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer %(token)s"}, body)
end
"""


async def hot_products(url: str) -> None:
    engine = create_engine(Settings(database_url=url), pooled=False)
    now = utcnow()
    rows = [
        {"sku": f"HOT-{n}", "name": f"Hot {n}", "description": "", "price": "9.99",
         "stock": STOCK, "category": None, "version": 1, "created_at": now, "updated_at": now}
        for n in range(1, HOT + 1)
    ]  # fmt: skip
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Product), rows)
    finally:
        await engine.dispose()


async def consistent(url: str) -> tuple[int, int, int]:
    """(orders placed, units sold by stock, units in order lines)."""
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.connect() as connection:
            placed = (
                await connection.execute(select(func.count()).select_from(Order))
            ).scalar_one()
            stock = (await connection.execute(select(func.sum(Product.stock)))).scalar_one()
            units = (await connection.execute(select(func.sum(OrderLine.quantity)))).scalar_one()
    finally:
        await engine.dispose()
    return int(placed), HOT * STOCK - int(stock), int(units or 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["postgresql", "sqlite", "mariadb"])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, median of {args.repeat} runs, "
          f"1 uvicorn worker, pool 5 + 5, {HOT} hot products\n")  # fmt: skip
    print("| backend | placed orders/s | p50 ms | p99 ms | non-2xx | stock sold = units ordered |")
    print("|---|---:|---:|---:|---:|---|")
    for backend in args.backends:
        url = database_url(backend, workdir)
        asyncio.run(fresh_schema(url))
        asyncio.run(hot_products(url))
        script = workdir / "orders.lua"
        script.write_text(SCRIPT % {"token": asyncio.run(admin_token(url))})
        with served({"CATALOG_DATABASE_URL": url}) as base_url:
            run_wrk(base_url, script, 2, args.connections)  # warm-up
            runs = [
                run_wrk(base_url, script, args.seconds, args.connections)
                for _ in range(args.repeat)
            ]
        placed, sold, units = asyncio.run(consistent(url))
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"| {backend} | {median['rps']:.0f} | {median['p50']:.1f} | {median['p99']:.1f} "
            f"| {sum(run['non2xx'] for run in runs):.0f} "
            f"| {'yes' if sold == units else 'NO'}: {sold} units in {placed} orders |",
            flush=True,
        )


if __name__ == "__main__":
    main()
