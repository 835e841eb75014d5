"""The pages at the seeds' scale against the JSON routes that serve the same data.

    python bench/shop_scale.py [--products 1000000] [--backends sqlite postgresql mariadb]
                               [--rounds 5] [--requests 20] [--reuse] [--budget]
    python bench/shop_scale.py --vacuum-effect [--products 1000000]
    python bench/shop_scale.py --smoke

For each backend: a fresh schema seeded with --products demo products (`catalog
seed`'s path; bench/common.py's database URLs: CATALOG_TEST_POSTGRESQL_URL and
CATALOG_TEST_MARIADB_URL, whose tables are dropped, or a throwaway SQLite file), one
`catalog serve` worker, and one client asking one request at a time, as a shopper's
browser does. Each pair is a page and the JSON route it shows:

| pair | page | JSON |
|---|---|---|
| home | `/` | `/products?sort=-created_at&limit=8` |
| search | `/search?q=dinosaurs&category=books` | `/products?q=dinosaurs&category=books` |
| search, first time | the same with `price_max={n}.00`, new each time | the same |
| category | `/search?category=books&sort=price` | `/products?category=books&sort=price` |
| filtered | `/search?category=books&price_max=20` | `/products?category=books&price_max=20` |
| product | `/product/{id}` | `/products/{id}` (ids spread over the catalog) |
| staff search | `/staff/products?q=dinosaurs` (signed in) | `/products?q=dinosaurs&limit=50` |

Each round asks --requests of each URL in turn (the order rotating by round); the
table gives the median latency of each over all rounds and the median of the rounds'
page/JSON ratios, so that a ratio compares requests seconds apart on a machine whose
speed drifts. Before timing, every answer is checked (200, its type, products in it).

--vacuum-effect: what `catalog seed` leaves behind on PostgreSQL. The catalog is seeded
as before the seed ran VACUUM (ANALYZE only), timed, then VACUUMed (timed too) and
timed again, in one run.

A results page shows how many products match: a search counts up to 1,000 matches,
and the worker keeps that count for CATALOG_RESULT_COUNTS_TTL seconds, so that the
search pair's pages after the first reuse it; "search, first time" pays it each time.

--reuse: keep a database that already holds exactly --products products (seeding a
million takes 20 to 60 s per backend). --budget: exit 1 if a page's median is over 1 s
or over 10x its JSON route's (the targets are 100 ms and 1.5x: the budget is ten times
as generous, so that a noisy machine never fails it, and a full scan always does).
"""

import argparse
import asyncio
import html
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import catalog_server, create_admin, database_url, seeded_schema
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.config import Settings
from catalog.db.bulk import settle
from catalog.db.engine import create_engine
from catalog.models import migrations
from catalog.products import repository, seed
from catalog.users.security import create_access_token
from catalog.web.visitors import PAGES_AUDIENCE, SESSION_COOKIE

JSON, HTML = "application/json", "text/html"
PAIRS = {
    "home": ("/", "/products?sort=-created_at&limit=8"),
    "search": ("/search?q=dinosaurs&category=books", "/products?q=dinosaurs&category=books"),
    # The same search, its count never kept: a price_max above every price, new each
    # time, makes each request a search the worker has not counted yet.
    "search, first time": (
        "/search?q=dinosaurs&category=books&price_max={n}.00",
        "/products?q=dinosaurs&category=books&price_max={n}.00",
    ),
    "category": ("/search?category=books&sort=price", "/products?category=books&sort=price"),
    # Neither a category alone nor the whole catalog: the page counts up to its bound.
    "filtered": (
        "/search?category=books&price_max=20",
        "/products?category=books&price_max=20",
    ),
    "product": ("/product/{id}", "/products/{id}"),
    "staff search": ("/staff/products?q=dinosaurs", "/products?q=dinosaurs&limit=50"),
}
STAFF = {"staff search"}
TARGET_MS, TARGET_RATIO = 100.0, 1.5
# Ten times the target's time; the page at most ten times its JSON route.
BUDGET_MS, BUDGET_RATIO = 10 * TARGET_MS, 10.0


async def _prepared(url: str, products: int, reuse: bool) -> tuple[float | None, int]:
    """The database seeded (unless --reuse finds it so); seconds the seed took, and the
    id of an admin account to sign the staff pages in with."""
    seconds = None
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        ready = False
        if reuse:
            try:
                ready = (await migrations.state(engine)).is_current and (
                    await repository.count_all(engine) == products
                )
            except Exception:  # no schema yet, or another one: seed it
                ready = False
        if not ready:
            started = time.perf_counter()
            await seeded_schema(url, products)
            seconds = time.perf_counter() - started
        return seconds, await create_admin(url)
    finally:
        await engine.dispose()


def _checked(client: httpx.Client, page: str, api: str) -> None:
    """Both answers 200 and of their type, the JSON with products in it, and the page
    showing the first of them (a search that found nothing would be cheap for the
    wrong reason)."""
    answers = {}
    for path, accept in ((page, HTML), (api, JSON)):
        answer = client.get(path, headers={"Accept": accept})
        kind = answer.headers.get("content-type", "")
        if answer.status_code != 200 or not kind.startswith(accept):
            raise SystemExit(f"{path}: {answer.status_code} {kind!r}\n{answer.text[:500]}")
        answers[accept] = answer
    body = answers[JSON].json()
    first = body["items"][0] if "items" in body else body
    if html.escape(first["name"]) not in answers[HTML].text:
        raise SystemExit(f"{page} does not show {first['name']!r}, which {api} lists first")


async def _analyze_only(connection: AsyncConnection, table: str) -> None:
    # What the seed left behind before it ran VACUUM: statistics, no visibility map.
    await connection.exec_driver_sql(f'ANALYZE "{table}"')
    await connection.commit()


async def _vacuum(url: str) -> float:
    engine = create_engine(Settings(database_url=url, statement_timeout=600), pooled=False)
    try:
        async with engine.connect() as connection:
            started = time.perf_counter()
            await settle(connection, "products")
            return time.perf_counter() - started
    finally:
        await engine.dispose()


def vacuum_effect(workdir: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """The pages on a catalog seeded without VACUUM, then after one."""
    seed.settle = _analyze_only  # type: ignore[assignment]
    try:
        before = measure("postgresql", workdir, args)
    finally:
        seed.settle = settle
    seconds = asyncio.run(_vacuum(database_url("postgresql", workdir)))
    args.reuse = True
    after = measure("postgresql", workdir, args)
    for row in before:
        row["backend"] = "postgresql, ANALYZE only"
    for row in after:
        row["backend"] = f"postgresql, then VACUUM ({seconds:.1f} s)"
    return before + after


def measure(backend: str, workdir: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    url = database_url(backend, workdir)
    seconds, staff_id = asyncio.run(_prepared(url, args.products, args.reuse))
    seeded = f"seeded in {seconds:.1f} s" if seconds is not None else "reused"
    print(f"{backend}: {args.products:,} products, {seeded}", file=sys.stderr, flush=True)
    token, _ = create_access_token(staff_id, Settings(), audience=PAGES_AUDIENCE, ttl=3600)
    env = {"CATALOG_DATABASE_URL": url, "CATALOG_ACCESS_LOG": "false"}
    # Product ids spread over the catalog, so that the product pair is not one cached row.
    ids = [1 + (n * 7919 * 127) % args.products for n in range(1, args.requests + 1)]
    times: dict[tuple[str, str], list[float]] = {}
    fresh = itertools.count(1_000)  # above every seeded price (499.99 at most)
    ratios: dict[str, list[float]] = {name: [] for name in PAIRS}
    with (
        catalog_server(env) as server,
        httpx.Client(base_url=server.base_url) as guest,
        httpx.Client(base_url=server.base_url, cookies={SESSION_COOKIE: token}) as staff,
    ):
        # Shoppers as guests, the staff signed in; the JSON routes take no cookie.
        clients = {name: staff if name in STAFF else guest for name in PAIRS}
        for name, (page, api) in PAIRS.items():
            _checked(clients[name], page.format(id=ids[0], n=500), api.format(id=ids[0], n=500))
        names = list(PAIRS)
        for round_number in range(args.rounds + 1):  # round 0 warms up
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                medians = []
                for kind, accept in (("page", HTML), ("JSON", JSON)):
                    path = PAIRS[name][0 if kind == "page" else 1]
                    taken = []
                    for product_id in ids:
                        url = path.format(id=product_id, n=next(fresh))
                        started = time.perf_counter()
                        client = clients[name] if kind == "page" else guest
                        answer = client.get(url, headers={"Accept": accept})
                        taken.append((time.perf_counter() - started) * 1000)
                        if answer.status_code != 200:
                            raise SystemExit(f"{path}: {answer.status_code}")
                    if round_number:
                        times.setdefault((name, kind), []).extend(taken)
                    medians.append(statistics.median(taken))
                if round_number:
                    ratios[name].append(medians[0] / medians[1])
    return [
        {
            "backend": backend,
            "pair": name,
            "page": statistics.median(times[(name, "page")]),
            "json": statistics.median(times[(name, "JSON")]),
            "ratio": statistics.median(ratios[name]),
        }
        for name in PAIRS
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql", "mariadb"]
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep a database already seeded")
    parser.add_argument("--budget", action="store_true", help="exit 1 over the budget")
    parser.add_argument("--smoke", action="store_true", help="SQLite, 2,000 products, 1 round")
    parser.add_argument(
        "--vacuum-effect", action="store_true", help="PostgreSQL before and after VACUUM"
    )
    args = parser.parse_args()
    if args.smoke:
        args.products, args.backends, args.rounds, args.requests = 2_000, ["sqlite"], 1, 3
    rows = []
    with tempfile.TemporaryDirectory(prefix="catalog-scale-") as tmp:
        if args.vacuum_effect:
            rows = vacuum_effect(Path(tmp), args)
        for backend in [] if args.vacuum_effect else args.backends:
            rows += measure(backend, Path(tmp), args)
    print(
        f"\n{args.products:,} products, one worker, one client; medians over {args.rounds} "
        f"rounds of {args.requests} requests each, in turns\n"
    )
    print("| backend | pair | JSON ms | page ms | page/JSON |")
    print("|---|---|---:|---:|---:|")
    over = []
    for row in rows:
        page, api, ratio = float(row["page"]), float(row["json"]), float(row["ratio"])  # type: ignore[arg-type]
        marks = "" if page <= TARGET_MS and ratio <= TARGET_RATIO else " (over the target)"
        print(
            f"| {row['backend']} | {row['pair']} | {api:.1f} | {page:.1f} | {ratio:.2f}x{marks} |"
        )
        if page > BUDGET_MS or ratio > BUDGET_RATIO:
            over.append(f"{row['backend']} {row['pair']}: {page:.1f} ms, {ratio:.2f}x")
    if args.budget and over:
        raise SystemExit(
            f"over the budget ({BUDGET_MS:.0f} ms, {BUDGET_RATIO:.0f}x): " + "; ".join(over)
        )


if __name__ == "__main__":
    main()
