"""Peak memory (and time) of `catalog import` on a large file: it must stream, not load.

    python bench/import_memory.py [--products 1000000] [--backend sqlite] [--format ndjson]

Seeds --products demo products, writes them to a file with `catalog export`, empties
the catalog, then runs `catalog import` on the file as its own process and reads that
process's peak resident set size from the kernel (wait4). Issue 5's target: under
200 MiB for 1,000,000 rows.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import database_url, fresh_schema, seeded_schema

CATALOG = str(Path(sys.executable).with_name("catalog"))


def run_measured(arguments: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run `catalog arguments`; its wall time in s and peak RSS in MiB (Linux: KiB)."""
    started = time.perf_counter()
    process = subprocess.Popen([CATALOG, *arguments], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"catalog {' '.join(arguments)} failed")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    url = database_url(args.backend, workdir)
    env = {**os.environ, "CATALOG_DATABASE_URL": url}
    data = workdir / f"products.{args.format}"
    asyncio.run(seeded_schema(url, args.products))
    export_time, export_rss = run_measured(["export", str(data)], env)
    asyncio.run(fresh_schema(url))
    import_time, import_rss = run_measured(["import", str(data)], env)
    size = data.stat().st_size / 2**20
    print(f"{args.products:,} products, {args.backend}, {args.format} file of {size:,.0f} MiB\n")
    print("| command | wall s | rows/s | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for name, took, rss in (
        ("export", export_time, export_rss),
        ("import", import_time, import_rss),
    ):
        print(f"| catalog {name} | {took:.1f} | {args.products / took:,.0f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
