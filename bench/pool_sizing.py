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
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.db.migrations import upgrade
from catalog.models import Base
from catalog.products.seed import seed_products

SERVER_URLS = {
    "postgresql": os.environ.get(
        "CATALOG_TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "CATALOG_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/test"
    ),
}
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
                    {["Content-Type"] = "application/json"}, body)
end
""",
}


async def prepare(url: str) -> None:
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
            await connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        await upgrade(engine)
        await seed_products(engine, count=PRODUCTS, seed=1)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def to_ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:  # wrk prints e.g. "-nanus" when nothing completed
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(base_url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    output = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            base_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Requests/sec" not in output:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rps": rps,
        "p50": p50,
        "p99": p99,
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def measure(
    url: str, pool_size: int, args: argparse.Namespace, scripts: dict[str, Path]
) -> dict[str, dict[str, float]]:
    port = free_port()
    env = {
        **os.environ,
        "CATALOG_DATABASE_URL": url,
        "CATALOG_POOL_SIZE": str(pool_size),
        "CATALOG_MAX_OVERFLOW": "0",
        "CATALOG_POOL_TIMEOUT": "30",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "catalog.main:create_app", "--factory",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/health/ready", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        results = {}
        for name, script in scripts.items():
            run_wrk(base_url, script, args.warmup, args.connections)
            runs = [
                run_wrk(base_url, script, args.seconds, args.connections)
                for _ in range(args.repeat)
            ]
            results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


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
    scripts = {}
    for name, body in SCRIPTS.items():
        scripts[name] = workdir / f"{name}.lua"
        scripts[name].write_text(body % {"n": PRODUCTS})

    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, median of {args.repeat} runs, "
          f"1 uvicorn worker, {PRODUCTS} products, max_overflow=0\n")  # fmt: skip
    print(
        "| backend | pool_size | read req/s | read p50 ms | read p99 ms "
        "| write req/s | write p50 ms | write p99 ms | non-2xx |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend in args.backends:
        url = (
            f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
            if backend == "sqlite"
            else SERVER_URLS[backend]
        )
        asyncio.run(prepare(url))
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
