"""Reads while the staff's import page takes a large file: does the service keep serving?

    python bench/import_reads.py [--backend postgresql] [--mib 50] [--bad 0.5]
                                 [--products 10000] [--source OTHER/src]

One `catalog serve` worker on --backend (bench/common.py's database URLs; its tables are
dropped and rebuilt) with --products demo products. A signed-in staff member uploads a
CSV of about --mib MiB to /staff/import (the page that streams its progress), one row in
1/--bad not valid (a price of "x"), while one client reads `GET /products/{id}` one
request after the other. The reads are timed before the upload (as many as during it,
at most 2,000) and during it, until the import's page has ended; the table gives their
percentiles, how long the import took, and the worker's peak resident memory before and
after.
"""

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import catalog_server, create_admin, database_url, seeded_schema

from catalog.config import Settings
from catalog.users.security import create_access_token
from catalog.web.visitors import PAGES_AUDIENCE, SESSION_COOKIE

HEADER = "sku,name,description,price,stock,category\n"


def write_file(path: Path, mib: int, bad: float) -> int:
    """A CSV of about `mib` MiB; returns its rows."""
    rng = random.Random(7)
    rows = 0
    with path.open("w") as out:
        out.write(HEADER)
        # Under the limit with the multipart envelope around it.
        while out.tell() < mib * 2**20 - 2**16:
            rows += 1
            price = "x" if rng.random() < bad else f"{rng.randint(1, 99999) / 100:.2f}"
            out.write(
                f"IMP-{rows:08d},Imported dinosaur poster {rows},A poster of a dinosaur,"
                f"{price},{rng.randint(0, 500)},posters\n"
            )
    return rows


def read_until(base_url: str, products: int, stop: threading.Event, limit: int) -> list[float]:
    """Milliseconds of each `GET /products/{id}`, one after the other, until `stop`."""
    taken: list[float] = []
    with httpx.Client(base_url=base_url) as client:
        while not stop.is_set() and len(taken) < limit:
            started = time.perf_counter()
            client.get(f"/products/{random.randint(1, products)}").raise_for_status()
            taken.append((time.perf_counter() - started) * 1000)
    return taken


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found[1]) / 1024 if found else float("nan")


def describe(name: str, taken: list[float]) -> str:
    ordered = sorted(taken)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return (
        f"| {name} | {len(taken):,} | {statistics.median(taken):.1f} | {at(0.99):.1f} | "
        f"{ordered[-1]:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="postgresql")
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--bad", type=float, default=0.5)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument(
        "--source", type=Path, help="serve the catalog package of this src/ (an earlier commit)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="catalog-import-reads-") as tmp:
        workdir = Path(tmp)
        url = database_url(args.backend, workdir)
        asyncio.run(seeded_schema(url, args.products))
        token, _ = create_access_token(
            asyncio.run(create_admin(url)), Settings(), audience=PAGES_AUDIENCE, ttl=3600
        )
        upload = workdir / "big.csv"
        rows = write_file(upload, args.mib, args.bad)
        env = {"CATALOG_DATABASE_URL": url, "CATALOG_ACCESS_LOG": "false"}
        with catalog_server(env, source=args.source) as server:
            pid = server.process.pid
            calm = read_until(server.base_url, args.products, threading.Event(), 2_000)
            rss_before = peak_rss_mib(pid)
            stop = threading.Event()
            during: list[float] = []
            reader = threading.Thread(
                target=lambda: during.extend(
                    read_until(server.base_url, args.products, stop, 10**9)
                )
            )
            with httpx.Client(
                base_url=server.base_url, cookies={SESSION_COOKIE: token}, timeout=3600
            ) as staff:
                form = staff.get("/staff/import", headers={"Accept": "text/html"})
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
                assert csrf is not None, form.text
                reader.start()
                started = time.perf_counter()
                with upload.open("rb") as handle:
                    page = staff.post(
                        "/staff/import",
                        data={"csrf_token": csrf[1], "on_error": "skip"},
                        files={"file": ("big.csv", handle, "text/csv")},
                        headers={"Accept": "text/html"},
                    )
                seconds = time.perf_counter() - started
                stop.set()
                reader.join()
            report = re.search(r'<p role="status">([^<]+)</p>', page.text)
            rss_after = peak_rss_mib(pid)
    print(f"\n{args.backend}, {args.products:,} products, one worker; the upload: "
          f"{args.mib} MiB, {rows:,} rows, {args.bad:.0%} not valid")  # fmt: skip
    print(f"import page: {page.status_code}, {seconds:.1f} s: "
          f"{report[1] if report else page.text[-500:]}")  # fmt: skip
    print(f"worker's peak resident memory: {rss_before:.0f} MiB before, {rss_after:.0f} after\n")
    print("| reads of GET /products/{id} | requests | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    print(describe("before the upload", calm))
    print(describe("during the upload and import", during))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
