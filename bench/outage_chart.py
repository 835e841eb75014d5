"""Draw docs/img/outage.png: pool and latency over a load run with a database crash and restart.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python bench/outage_chart.py [--seconds 30] [--clients 16]

A throwaway PostgreSQL (tests/throwaway.py, on a free port) serves a real `catalog
serve`; 16 clients read random products for the whole run; the database is killed
(`pg_ctl stop -m immediate`) a third of the way in and started again 4 s later.
/health/pool is sampled every 100 ms. Prints the counts the chart shows.
"""

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests' throwaway server and server runner

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.models import migrations
from catalog.products.seed import seed_products
from tests.servers import catalog_server
from tests.throwaway import ThrowawayPostgres

PRODUCTS = 2000


async def prepare(url: str) -> None:
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        await migrations.upgrade(engine)
        await seed_products(engine, count=PRODUCTS, seed=1)
    finally:
        await engine.dispose()


async def run(base_url: str, db: ThrowawayPostgres, args: argparse.Namespace) -> dict[str, list]:
    started = time.monotonic()
    stop_at = started + args.seconds
    crash_at, restart_at = started + args.seconds / 3, started + args.seconds / 3 + 4
    requests: list[tuple[float, float, int]] = []
    pool: list[tuple[float, int, int]] = []
    events: dict[str, float] = {}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while (now := time.monotonic()) < stop_at:
                try:
                    response = await http.get(f"/products/{random.randint(1, PRODUCTS)}")
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                requests.append((now - started, time.monotonic() - now, status))

    async def sampler() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            while (now := time.monotonic()) < stop_at:
                state = (await http.get("/health/pool")).json()
                pool.append((now - started, state["checked_out"], state["waiting"]))
                await asyncio.sleep(0.1)

    async def chaos() -> None:
        await asyncio.sleep(crash_at - time.monotonic())
        events["crash"] = time.monotonic() - started
        await asyncio.to_thread(db.crash)
        await asyncio.sleep(restart_at - time.monotonic())
        await asyncio.to_thread(db.start)
        events["restart"] = time.monotonic() - started

    await asyncio.gather(sampler(), chaos(), *(client() for _ in range(args.clients)))
    return {"requests": requests, "pool": pool, "events": [events["crash"], events["restart"]]}


def draw(data: dict[str, list], output: Path) -> None:
    requests, pool = data["requests"], data["pool"]
    crash, restart = data["events"]
    width = 0.5
    bins: dict[int, list[tuple[float, int]]] = {}
    for at, latency, status in requests:
        bins.setdefault(int(at / width), []).append((latency, status))
    times = sorted(bins)
    x = [index * width for index in times]
    p50 = [statistics.median(lat for lat, _ in bins[i]) * 1000 for i in times]
    p99 = [sorted(lat for lat, _ in bins[i])[int(0.99 * (len(bins[i]) - 1))] * 1000 for i in times]
    ok = [sum(1 for _, s in bins[i] if s == 200) / width for i in times]
    failed = [sum(1 for _, s in bins[i] if s != 200) / width for i in times]

    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for axis in (top, middle, bottom):
        axis.axvspan(crash, restart, color="red", alpha=0.12, label="database down")
    top.step([p[0] for p in pool], [p[1] for p in pool], where="post", label="checked out")
    top.step([p[0] for p in pool], [p[2] for p in pool], where="post", label="waiting")
    top.set_ylabel("connections")
    top.legend(loc="upper right")
    middle.plot(x, p50, label="p50")
    middle.plot(x, p99, label="p99")
    middle.set_ylabel("latency (ms)")
    middle.set_yscale("log")
    middle.legend(loc="upper right")
    bottom.bar(x, ok, width=width, align="edge", label="200 per s", color="tab:green")
    bottom.bar(x, failed, width=width, align="edge", bottom=ok, label="503 per s", color="tab:red")
    bottom.set_ylabel("responses/s")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right")
    figure.suptitle("catalog under load: PostgreSQL killed and restarted (1 worker, 16 clients)")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "img" / "outage.png")
    args = parser.parse_args()

    db = ThrowawayPostgres(Path(tempfile.mkdtemp()))
    db.start()
    try:
        asyncio.run(prepare(db.url))
        env = {"CATALOG_DATABASE_URL": db.url, "CATALOG_CONNECT_TIMEOUT": "1"}
        log = Path(tempfile.mkdtemp()) / "server.log"
        with catalog_server(env, log) as server:
            data = asyncio.run(run(server.base_url, db, args))
        errors = [line for line in server.output().splitlines() if "500" in line or "Error" in line]
        print("server log lines with 500/Error:", *errors[:10], sep="\n  ")
    finally:
        db.stop()
    draw(data, args.output)
    statuses = [status for _, _, status in data["requests"]]
    crash, restart = data["events"]
    after = [at for at, _, status in data["requests"] if at > restart and status == 200]
    counts = Counter(statuses)
    print(f"requests {len(statuses)} by status (0: no HTTP answer): {dict(sorted(counts.items()))}")
    print(f"database down from {crash:.1f} s to {restart:.1f} s; "
          f"first 200 after restart at {min(after):.2f} s")  # fmt: skip
    print(f"max checked out {max(p[1] for p in data['pool'])}, "
          f"max waiting {max(p[2] for p in data['pool'])}; chart: {args.output}")  # fmt: skip


if __name__ == "__main__":
    main()
