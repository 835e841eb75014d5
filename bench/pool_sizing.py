"""Measure throughput and latency of one worker at several pool sizes, to choose defaults.

    python bench/pool_sizing.py --backends sqlite postgresql mariadb --sizes 1 2 5 10 20

For each backend: migrate, seed 10,000 products, then for each pool size start a real
`catalog serve` (1 worker, max_overflow=0) and load it with wrk, 64 connections, on a
read scenario (GET /products/{random id}) and a write scenario (PATCH a random
product's stock). Prints a Markdown table; docs/benchmarks.md keeps the results.
Needs wrk (Debian package `wrk`).
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path

from common import admin_token, database_url, run_wrk, seeded_schema, served

PRODUCTS = 10_000


SCRIPTS = {
    "read": """
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/products/" .. math.random(1, %(n)d))
end
""",
    "write": """
math.randomseed(os.time())
request = function()
  local body = '{"stock": ' .. math.random(0, 1000) .. '}'
  return wrk.format("PATCH", "/products/" .. math.random(1, %(n)d),
                    {["Content-Type"] = "application/json",
                     ["Authorization"] = "Bearer %(token)s"}, body)
end
""",
}


def measure(
    url: str, pool_size: int, args: argparse.Namespace, scripts: dict[str, Path]
) -> dict[str, dict[str, float]]:
    env = {
        "CATALOG_DATABASE_URL": url,
        "CATALOG_POOL_SIZE": str(pool_size),
        "CATALOG_MAX_OVERFLOW": "0",
        "CATALOG_POOL_TIMEOUT": "30",
    }
    results = {}
    with served(env) as base_url:
        for name, script in scripts.items():
            run_wrk(base_url, script, args.warmup, args.connections)
            runs = [
                run_wrk(base_url, script, args.seconds, args.connections)
                for _ in range(args.repeat)
            ]
            results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql", "mariadb"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 2, 5, 10, 20])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="catalog-bench-"))

    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, median of {args.repeat} runs, "
          f"1 uvicorn worker, {PRODUCTS} products, max_overflow=0\n")  # fmt: skip
    print(
        "| backend | pool_size | read req/s | read p50 ms | read p99 ms "
        "| write req/s | write p50 ms | write p99 ms | non-2xx |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend in args.backends:
        url = database_url(backend, workdir)
        asyncio.run(seeded_schema(url, PRODUCTS))
        token = asyncio.run(admin_token(url))
        scripts = {}
        for name, body in SCRIPTS.items():
            scripts[name] = workdir / f"{name}.lua"
            scripts[name].write_text(body % {"n": PRODUCTS, "token": token})
        for size in args.sizes:
            result = measure(url, size, args, scripts)
            read, write = result["read"], result["write"]
            print(
                f"| {backend} | {size} | {read['rps']:.0f} | {read['p50']:.1f} | {read['p99']:.1f} "
                f"| {write['rps']:.0f} | {write['p50']:.1f} | {write['p99']:.1f} "
                f"| {read['non2xx'] + write['non2xx']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
