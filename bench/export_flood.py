"""Reads while clients loop exports: without bounds on exports, and with the defaults.

    python bench/export_flood.py [--backend sqlite] [--products 20000] [--rounds 3]
        [--seconds 8] [--flood 16]

GET /products/export renders every product on the event loop. Before issue 25, sixteen
anonymous clients looping it took reads from a 4-6 ms median to 416-532 ms. Two servers
run at once on one database (seeded with --products demo products), each idle while
the other is measured:

- no bounds: CATALOG_MAX_EXPORTS and CATALOG_MAX_EXPORTS_PER_CLIENT at 1,000, which is
  the service as it was;
- defaults: 2 exports at once per worker, 1 per client address (503 and 429 beyond,
  with Retry-After).

Each round, per server: 1 s of reads alone, then `--flood` wrk connections looping
exports (all from this host: one client address) while one client reads
GET /products/{id} one after another. Reported per server: the reads' median and p99
under flood (and alone), and the exports answered per second, by status.
"""

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import SERVER_URLS, fresh_schema, server_process
from login_flood import percentile, status_counts
from suite import ensure_wrk

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.products.seed import seed_products


@dataclass
class Result:
    idle_ms: list[float] = field(default_factory=list)
    flood_ms: list[float] = field(default_factory=list)
    failed_reads: int = 0
    reads: int = 0
    exports: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0


async def prepare(url: str, products: int) -> None:
    await fresh_schema(url)
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        await seed_products(engine, count=products, seed=1)
    finally:
        await engine.dispose()


def _reads(base_url: str, until: float, into: list[float], products: int) -> int:
    failures = 0
    with httpx.Client(base_url=base_url, timeout=10) as client:
        n = 0
        while time.monotonic() < until:
            n += 1
            started = time.perf_counter()
            try:
                ok = client.get(f"/products/{n % products + 1}").status_code == 200
            except httpx.HTTPError:
                ok = False
            into.append((time.perf_counter() - started) * 1000)
            failures += not ok
    return failures


def _flood(base_url: str, seconds: int, connections: int) -> None:
    subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         f"{base_url}/products/export"],
        capture_output=True, check=True,
    )  # fmt: skip


def measure(base_url: str, args: argparse.Namespace, result: Result) -> None:
    _reads(base_url, time.monotonic() + 1, result.idle_ms, args.products)
    reads: list[float] = []
    failures: list[int] = []
    until = time.monotonic() + args.seconds
    reader = threading.Thread(
        target=lambda: failures.append(_reads(base_url, until, reads, args.products))
    )
    reader.start()
    _flood(base_url, args.seconds, args.flood)
    reader.join()
    result.flood_ms += reads
    result.reads += len(reads)
    result.failed_reads += sum(failures)
    result.seconds += args.seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql", "mariadb"])
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--flood", type=int, default=16, help="wrk connections exporting")
    args = parser.parse_args()
    ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="catalog-export-flood-"))
    if args.backend == "sqlite":
        url = f"sqlite+inline:///{workdir / 'bench.db'}"
    else:
        url = SERVER_URLS[args.backend]
    asyncio.run(prepare(url, args.products))
    common = {
        "CATALOG_DATABASE_URL": url,
        "CATALOG_JWT_SECRET": "b" * 48,
        "CATALOG_METRICS_PUBLIC": "true",
        "CATALOG_ACCESS_LOG": "false",
    }
    unbounded = {"CATALOG_MAX_EXPORTS": "1000", "CATALOG_MAX_EXPORTS_PER_CLIENT": "1000"}
    configs = {"no bounds": {**common, **unbounded}, "defaults": common}
    results = {name: Result() for name in configs}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                server_process(
                    "catalog.main:served_app", env, factory=True, ready_path="/health/ready"
                )
            )
            for name, env in configs.items()
        }
        for round_number in range(args.rounds):
            names = list(servers)
            if round_number % 2:
                names.reverse()
            for name in names:
                print(f"round {round_number + 1}: {name}", file=sys.stderr)
                measure(servers[name].base_url, args, results[name])
        for name, server in servers.items():
            results[name].exports.update(status_counts(server.base_url, "/products/export"))
    print(
        f"\n{args.backend}, {args.products:,} products, {args.rounds} rounds of {args.seconds} s, "
        f"{args.flood} connections looping GET /products/export, one client reading "
        "GET /products/{id}\n"
    )
    print(
        "| server | read alone p50 | read under flood p50 / p99 | failed reads "
        "| exports answered/s (200 / 429 / 503) |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        per_second = {s: r.exports.get(s, 0) / r.seconds for s in (200, 429, 503)}
        print(
            f"| {name} | {statistics.median(r.idle_ms):.1f} ms "
            f"| {statistics.median(r.flood_ms):.1f} / {percentile(r.flood_ms, 0.99):.0f} ms "
            f"| {r.failed_reads} of {r.reads} "
            f"| {per_second[200]:.1f} / {per_second[429]:.0f} / {per_second[503]:.0f} |"
        )


if __name__ == "__main__":
    main()
