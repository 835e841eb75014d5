"""The speed suite: catalog against the tutorial pattern, a raw driver and the database.

    make bench                      # or: python bench/suite.py
    python bench/suite.py [--products 100000] [--seconds 10] [--connections 16 64 256]
                          [--reuse] [--write-docs] [--smoke]

Every configuration serves the same data (--products demo products, seeded once per
backend) on this machine, one after the other, under wrk:

- catalog on PostgreSQL, MariaDB and SQLite, with 1 and 2 uvicorn workers;
- bench/baselines/tutorial.py: the tutorial pattern (sync engine, pool 10 + 20,
  `def` routes, `db.query`), on PostgreSQL and SQLite, and with NullPool on PostgreSQL
  (the pooled-versus-unpooled claim);
- bench/baselines/raw_asyncpg.py: Starlette with a raw asyncpg pool, the ceiling for
  the single-row read;
- bench/baselines/fastapi_floor.py: the least FastAPI can do for that read, over an
  asyncpg pool and over SQLAlchemy Core (the floors that FastAPI and SQLAlchemy set);
- pgbench: the same point select, prepared, from C: the database's own ceiling.

Scenarios: `GET /products/{id}` with random ids, `GET /products?limit=20`, the dinosaur
search, `POST /orders` on 5 hot products (catalog only: the baselines have no orders)
and `GET /health/live` (no database: the HTTP ceiling). Each runs for --seconds after a
2 s warm-up, at each of --connections. Then, per configuration on a network database,
a second server whose connections go through a counting proxy (bench/roundtrips.py)
answers 200 sequential requests per scenario: database round trips per request.
Peak RSS is per worker process (VmHWM). Last, the headline ratios are measured again in
turns (IN_TURNS: every server of a line up at once, the scenario run on each in turn for
--turn-rounds rounds of 5 s, the median of each round's ratio), so that a ratio does not
compare two moments of a machine whose speed drifts.

--write-docs puts the tables between the suite's markers in docs/benchmarks.md and
draws docs/img/suite.png. --smoke is CI's run: 1,000 products, 1 s per scenario, 16
connections, and every configuration's answers checked for correctness, not speed.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from common import (
    SERVER_URLS,
    Server,
    admin_token,
    catalog_server,
    database_url,
    run_wrk,
    seeded_schema,
    server_process,
)
from roundtrips import RoundTripCounter
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.products.models import Product
from catalog.products.repository import count_all

REPO = Path(__file__).resolve().parent.parent
BASELINES = REPO / "bench" / "baselines"
DOCS = REPO / "docs" / "benchmarks.md"
CHART = REPO / "docs" / "img" / "suite.png"
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"
HOT, HOT_STOCK = 5, 1_000_000_000
SEARCH = "q=dinosaur&created_after=2020-01-01T00:00:00Z&sort=-created_at&limit=20"
POINT_SELECT = (
    "SELECT id, sku, name, description, price, stock, category, version, created_at, "
    "updated_at FROM products WHERE id = :id;"
)


@dataclass
class Config:
    name: str
    backend: str  # postgresql, mariadb, sqlite
    kind: str  # catalog, tutorial, tutorial-nullpool, raw-asyncpg, floor-asyncpg, floor-sqlalchemy
    workers: int = 1
    scenarios: tuple[str, ...] = ("one", "page", "search", "orders", "live")
    # catalog from another source tree (an earlier commit's src/), for before/after runs.
    source: Path | None = None


CONFIGS = [
    Config("catalog PG 1w", "postgresql", "catalog"),
    Config("catalog PG 2w", "postgresql", "catalog", workers=2),
    Config("tutorial PG", "postgresql", "tutorial", scenarios=("one", "page", "search", "live")),
    Config("tutorial PG NullPool", "postgresql", "tutorial-nullpool", scenarios=("one",)),
    Config("raw asyncpg PG", "postgresql", "raw-asyncpg", scenarios=("one", "live")),
    Config("FastAPI asyncpg PG", "postgresql", "floor-asyncpg", scenarios=("one", "page", "live")),
    Config(
        "FastAPI SQLAlchemy PG", "postgresql", "floor-sqlalchemy", scenarios=("one", "page", "live")
    ),
    Config("catalog MariaDB 1w", "mariadb", "catalog"),
    Config("catalog MariaDB 2w", "mariadb", "catalog", workers=2),
    Config("catalog SQLite 1w", "sqlite", "catalog"),
    Config("catalog SQLite 2w", "sqlite", "catalog", workers=2),
    Config("tutorial SQLite", "sqlite", "tutorial", scenarios=("one", "page", "search", "live")),
]


@dataclass
class Result:
    config: str
    scenario: str
    connections: int
    rps: float
    p50: float
    p99: float
    errors: float
    requests: float


@dataclass
class ConfigReport:
    results: list[Result] = field(default_factory=list)
    round_trips: dict[str, float] = field(default_factory=dict)
    peak_rss: list[float] = field(default_factory=list)


# The headline, measured again in turns once every configuration has run: (scenario,
# connections, configurations; the first is the one compared with the others).
IN_TURNS = [
    ("one", 64, ["catalog PG 1w", "tutorial PG", "raw asyncpg PG", "FastAPI SQLAlchemy PG",
                 "FastAPI asyncpg PG"]),
    ("page", 64, ["catalog PG 1w", "tutorial PG", "FastAPI SQLAlchemy PG"]),
    ("one", 16, ["catalog SQLite 1w", "tutorial SQLite"]),
    ("page", 16, ["catalog SQLite 1w", "tutorial SQLite"]),
]  # fmt: skip


@dataclass
class InTurns:
    """Configurations measured in rounds, one after the other within each round."""

    scenario: str
    connections: int
    rps: dict[str, list[float]]  # per configuration, per round
    ratios: dict[str, list[float]]  # the first configuration over each other, per round

    def median_rps(self, name: str) -> float:
        return statistics.median(self.rps[name]) if self.rps[name] else 0.0

    def median_ratio(self, name: str) -> float | None:
        return statistics.median(self.ratios[name]) if self.ratios[name] else None


def measure_in_turns(
    configs: list[Config],
    url: str,
    script: Path,
    scenario: str,
    connections: int,
    rounds: int,
    seconds: int,
) -> InTurns:
    """Every configuration serves at once; each round runs the scenario on each in turn,
    so that the ratios of a round are taken seconds apart, on the same machine."""
    first = configs[0].name
    turns = InTurns(
        scenario, connections, {c.name: [] for c in configs}, {c.name: [] for c in configs[1:]}
    )
    with ExitStack() as stack:
        servers = {config.name: stack.enter_context(start(config, url)) for config in configs}
        for server in servers.values():  # warm-up: connections, prepared statements
            run_wrk(server.base_url, script, 2, connections)
        for round_number in range(1, rounds + 1):
            measured = {
                name: run_wrk(server.base_url, script, seconds, connections)["rps"]
                for name, server in servers.items()
            }
            for name, value in measured.items():
                turns.rps[name].append(value)
                if name != first and value > 0:
                    turns.ratios[name].append(measured[first] / value)
            print(
                f"  in turns, {scenario} c={connections}, round {round_number}: "
                + ", ".join(f"{name} {value:.0f}" for name, value in measured.items()),
                flush=True,
            )
    return turns


def sync_url(url: str) -> str:
    """The baselines' URL: the tutorial's sync drivers, asyncpg's own DSN."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+psycopg2", "sqlite": "sqlite", "mysql": "mysql+pymysql"}
    return parsed.set(drivername=driver[parsed.get_backend_name()]).render_as_string(False)


def scripts(workdir: Path, products: int, token: str) -> dict[str, Path]:
    """wrk scripts per scenario; ids drawn per request, per thread seeds."""
    seed = "math.randomseed(os.time() + os.clock() * 1000000)\n"
    bodies = {
        "one": seed + "request = function()\n"
        f'  return wrk.format("GET", "/products/" .. math.random(1, {products}))\nend\n',
        "page": 'wrk.path = "/products?limit=20"\n',
        "search": f'wrk.path = "/products?{SEARCH}"\n',
        "live": 'wrk.path = "/health/live"\n',
        "orders": seed + "request = function()\n"
        f"  local ids = {{{', '.join(str(n) for n in range(1, HOT + 1))}}}\n"
        "  for i = #ids, 2, -1 do\n"
        "    local j = math.random(i)\n"
        "    ids[i], ids[j] = ids[j], ids[i]\n"
        "  end\n"
        "  local lines = {}\n"
        "  for i = 1, math.random(1, 3) do\n"
        "    lines[i] = '{\"product_id\": ' .. ids[i] .. ', \"quantity\": 1}'\n"
        "  end\n"
        "  local body = '{\"items\": [' .. table.concat(lines, ', ') .. ']}'\n"
        '  return wrk.format("POST", "/orders", {["Content-Type"] = "application/json",\n'
        f'                    ["Authorization"] = "Bearer {token}"}}, body)\n'
        "end\n",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, body in bodies.items():
        paths[name] = workdir / f"{name}.lua"
        paths[name].write_text(body)
    return paths


async def prepare_data(url: str, products: int, reuse: bool) -> str:
    """The backend's database with `products` products and 5 hot ones with endless
    stock; returns an admin token for POST /orders."""
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        ready = reuse and await count_all(engine) == products
    except DBAPIError:  # no schema yet: seed one
        ready = False
    finally:
        await engine.dispose()
    if not ready:
        took = await seeded_schema(url, products)
        print(f"  seeded {products:,} products in {took:.1f} s", flush=True)
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(Product).where(Product.id <= HOT).values(stock=HOT_STOCK)
            )
    finally:
        await engine.dispose()
    return await admin_token(url)


async def sku_of(url: str, product_id: int) -> str:
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.connect() as connection:
            sku = await connection.scalar(select(Product.sku).where(Product.id == product_id))
    finally:
        await engine.dispose()
    return str(sku)


@contextmanager
def start(config: Config, url: str) -> Iterator[Server]:
    """The configuration's server, on the database of `url`."""
    if config.kind == "catalog":
        env = {"CATALOG_DATABASE_URL": url, "CATALOG_SQLITE_BUSY_TIMEOUT": "30"}
        with catalog_server(env, config.workers, source=config.source) as server:
            yield server
    elif config.kind in ("tutorial", "tutorial-nullpool"):
        env = {"TUTORIAL_DATABASE_URL": sync_url(url)}
        if config.kind == "tutorial-nullpool":
            env["TUTORIAL_NULLPOOL"] = "1"
        with server_process("tutorial:app", env, app_dir=BASELINES) as server:
            yield server
    elif config.kind == "raw-asyncpg":
        dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        with server_process("raw_asyncpg:app", {"RAW_DATABASE_URL": dsn}, app_dir=BASELINES) as (
            server
        ):
            yield server
    elif config.kind in ("floor-asyncpg", "floor-sqlalchemy"):
        app = "fastapi_floor:on_" + config.kind.removeprefix("floor-")
        with server_process(app, {"FLOOR_DATABASE_URL": url}, app_dir=BASELINES) as server:
            yield server
    else:
        raise ValueError(config.kind)


def items(body: Any) -> list[dict[str, Any]]:
    """A page's products: catalog wraps them, the tutorial returns a bare list."""
    return list(body["items"] if isinstance(body, dict) else body)


def check_answers(config: Config, base_url: str, token: str, sku_1: str) -> None:
    """Every scenario of the configuration answers correctly (CI's smoke checks this)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        one = client.get("/products/1")
        assert one.status_code == 200, (config.name, one.text)
        assert one.json()["id"] == 1 and one.json()["sku"] == sku_1, (config.name, one.text)
        assert client.get("/products/999999999").status_code == 404, config.name
        if "page" in config.scenarios:
            page = items(client.get("/products", params={"limit": 20}).raise_for_status().json())
            assert [product["id"] for product in page] == sorted(p["id"] for p in page)
            assert len(page) == 20, config.name
        if "search" in config.scenarios:
            found = items(client.get(f"/products?{SEARCH}").raise_for_status().json())
            assert found, config.name
            for product in found:
                text = f"{product['name']} {product['description']}".lower()
                assert "dinosaur" in text, (config.name, product)
            dates = [product["created_at"] for product in found]
            assert dates == sorted(dates, reverse=True), config.name
        if "orders" in config.scenarios:
            order = client.post(
                "/orders",
                json={"items": [{"product_id": 1, "quantity": 1}]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert order.status_code == 201, (config.name, order.text)
        assert client.get("/health/live").status_code == 200, config.name


def count_round_trips(config: Config, url: str, token: str, requests: int) -> dict[str, float]:
    """Database round trips per request of each scenario, through a counting proxy."""
    parsed = make_url(url)
    default_port = 5432 if config.backend == "postgresql" else 3306
    with RoundTripCounter(parsed.host or "127.0.0.1", parsed.port or default_port) as counter:
        proxied = parsed.set(host="127.0.0.1", port=counter.port).render_as_string(False)
        paths: dict[str, Callable[[int], httpx.Request]] = {
            "one": lambda n: httpx.Request("GET", f"/products/{n % 1000 + 1}"),
            "page": lambda _n: httpx.Request("GET", "/products?limit=20"),
            "search": lambda _n: httpx.Request("GET", f"/products?{SEARCH}"),
            "orders": lambda _n: httpx.Request(
                "POST",
                "/orders",
                json={"items": [{"product_id": 1, "quantity": 1}]},
                headers={"Authorization": f"Bearer {token}"},
            ),
            "live": lambda _n: httpx.Request("GET", "/health/live"),
        }
        found = {}
        with start(config, proxied) as server, httpx.Client(base_url=server.base_url) as client:
            for scenario in config.scenarios:
                for n in range(20):  # connections opened, statements prepared
                    client.send(client.build_request(**_fields(paths[scenario](n))))
                time.sleep(0.2)
                counter.take()
                for n in range(requests):
                    response = client.send(client.build_request(**_fields(paths[scenario](n))))
                    assert response.status_code < 300, (config.name, scenario, response.text)
                time.sleep(0.2)  # connections go back to the pool after the response
                found[scenario] = counter.take() / requests
    return found


def _fields(request: httpx.Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": str(request.url),
        "content": request.content,
        "headers": dict(request.headers),
    }


def pgbench(url: str, products: int, seconds: int, connections: int, workdir: Path) -> Result:
    """The point select from pgbench's C client, prepared: the database's ceiling."""
    parsed = make_url(url)
    script = workdir / "point.sql"
    script.write_text(f"\\set id random(1, {products})\n{POINT_SELECT}\n")
    output = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", "-f", str(script), "-c", str(connections),
         "-j", "2", "-T", str(seconds), "-h", parsed.host or "127.0.0.1",
         "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
         parsed.database or "postgres"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tps = re.search(r"tps = ([\d.]+)", output)
    latency = re.search(r"latency average = ([\d.]+) ms", output)
    assert tps and latency, output
    return Result(
        "pgbench -S style", "one", connections, float(tps.group(1)),
        float(latency.group(1)), float("nan"), 0.0, float(tps.group(1)) * seconds,
    )  # fmt: skip


def connection_cost_ms(url: str, times: int = 30) -> float:
    """Median time to open (and close) one new PostgreSQL connection with psycopg2."""
    import psycopg2

    dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        psycopg2.connect(dsn).close()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run_config(
    config: Config, url: str, token: str, args: argparse.Namespace, paths: dict[str, Path]
) -> ConfigReport:
    report = ConfigReport()
    sku_1 = asyncio.run(sku_of(url, 1))
    with start(config, url) as server:
        check_answers(config, server.base_url, token, sku_1)
    if not args.smoke or args.smoke_load:
        for scenario in config.scenarios:
            # A fresh server per scenario: one that stalled (the tutorial's thread pool
            # can deadlock at 256 connections) must not spoil the next scenario.
            with start(config, url) as server:
                for connections in args.connections:
                    result = measure(server, config, scenario, connections, args, paths)
                    report.results.append(result)
                peaks = server.peak_rss_mib()
                if max(peaks, default=0) > max(report.peak_rss, default=0):
                    report.peak_rss = peaks
    if config.backend != "sqlite":
        report.round_trips = count_round_trips(config, url, token, args.round_trip_requests)
        print(f"  round trips/request: {report.round_trips}", flush=True)
    return report


def measure(
    server: Server,
    config: Config,
    scenario: str,
    connections: int,
    args: argparse.Namespace,
    paths: dict[str, Path],
) -> Result:
    run_wrk(server.base_url, paths[scenario], args.warmup, connections)
    measured = run_wrk(server.base_url, paths[scenario], args.seconds, connections)
    stalled = measured["requests"] == 0
    result = Result(
        config.name, scenario, connections, measured["rps"],
        float("nan") if stalled else measured["p50"],
        float("nan") if stalled else measured["p99"],
        measured["non2xx"] + measured["socket_errors"], measured["requests"],
    )  # fmt: skip
    print(
        f"  {scenario:7} c={connections:<4} {result.rps:8.0f} req/s  "
        f"p50 {result.p50:7.1f} ms  p99 {result.p99:7.1f} ms  errors {result.errors:.0f}"
        + ("  STALLED: no request completed" if stalled else ""),
        flush=True,
    )
    return result


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def markdown(
    reports: dict[str, ConfigReport],
    database: list[Result],
    args: argparse.Namespace,
    connection_ms: float | None,
    turns: list[InTurns],
) -> str:
    def find(config: str, scenario: str, connections: int) -> Result | None:
        for result in reports.get(config, ConfigReport()).results:
            if result.scenario == scenario and result.connections == connections:
                return result
        return None

    def rps(config: str, scenario: str, connections: int) -> float | None:
        found = find(config, scenario, connections)
        return found.rps if found else None

    headline_c = 64 if 64 in args.connections else args.connections[0]
    lines = [
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{' '.join(sys.argv)}`:",
        f"{args.products:,} products, wrk -t2 for {args.seconds} s after a {args.warmup} s "
        f"warm-up per point. Machine: {platform.machine()}, "
        f"{subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores, "
        f"Python {platform.python_version()}, {versions()}.",
        "",
        "Headline ratios (one worker, same run), at each number of connections. The "
        f"targets are set at {headline_c}. A baseline that served under a tenth of its "
        f"rate at {args.connections[0]} connections had stalled (the tutorial's thread-pool "
        "deadlock): no ratio is taken against it.",
        "",
        "| what | target | " + " | ".join(f"{c} conn." for c in args.connections) + " |",
        "|---|---|" + "---:|" * len(args.connections),
    ]

    def compared(ours_config: str, baseline: str, scenario: str, connections: int) -> str:
        ours, theirs = rps(ours_config, scenario, connections), rps(baseline, scenario, connections)
        calm = rps(baseline, scenario, args.connections[0])
        if theirs is not None and calm and theirs < calm / 10:
            return f"{ours or 0:.0f} vs stalled ({theirs:.0f}) req/s"
        return f"{ours or 0:.0f} vs {theirs or 0:.0f} req/s: **{ratio(ours, theirs)}**"

    pairs = [
        ("PG `GET /products/{id}` vs tutorial", "catalog PG 1w", "tutorial PG", "one", ">= 4x"),
        ("PG `GET /products/{id}` vs raw asyncpg", "catalog PG 1w", "raw asyncpg PG", "one",
         ">= 0.4x"),
        ("PG `GET /products/{id}` vs the FastAPI + SQLAlchemy floor", "catalog PG 1w",
         "FastAPI SQLAlchemy PG", "one", "(for reference)"),
        ("PG `GET /products/{id}` vs the FastAPI + asyncpg floor", "catalog PG 1w",
         "FastAPI asyncpg PG", "one", "(for reference)"),
        ("PG `GET /products?limit=20` vs tutorial", "catalog PG 1w", "tutorial PG", "page",
         ">= 3x"),
        ("PG page vs the FastAPI + SQLAlchemy floor", "catalog PG 1w", "FastAPI SQLAlchemy PG",
         "page", "(for reference)"),
        ("PG dinosaur search vs tutorial (ILIKE)", "catalog PG 1w", "tutorial PG", "search",
         ">= 3x"),
        ("SQLite `GET /products/{id}` vs tutorial", "catalog SQLite 1w", "tutorial SQLite",
         "one", ">= 3x"),
        ("SQLite page vs tutorial", "catalog SQLite 1w", "tutorial SQLite", "page", ">= 3x"),
        ("SQLite search vs tutorial", "catalog SQLite 1w", "tutorial SQLite", "search",
         ">= 3x"),
    ]  # fmt: skip
    for label, ours_config, baseline, scenario, target in pairs:
        cells = [compared(ours_config, baseline, scenario, c) for c in args.connections]
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    cells = []
    for connections in args.connections:
        found = find("catalog PG 1w", "one", connections)
        cells.append(
            f"{found.p99:.1f} / {found.p50:.1f} ms: **{found.p99 / found.p50:.2f}x**"
            if found and found.requests
            else "n/a"
        )
    lines.append("| PG `GET /products/{id}` p99 / p50 | <= 3x | " + " | ".join(cells) + " |")
    trips = reports.get("catalog PG 1w", ConfigReport()).round_trips.get("one")
    lines.append(
        f"| PG `GET /products/{{id}}` database round trips | exactly 1 | {trips} |"
        + " |" * (len(args.connections) - 1)
    )
    if turns:
        lines += [
            "",
            "The same ratios measured again in turns, after every configuration had run: all",
            "of a line's servers up at once, the scenario run on each in turn, round after",
            "round; the ratio is the median of the rounds' own (bench/interleaved.py does",
            "the same on demand). A ratio of the table above compares two runs made minutes",
            "apart, on a machine whose speed may have drifted meanwhile.",
            "",
            "| scenario | connections | rounds | configuration | median req/s | over it |",
            "|---|---:|---:|---|---:|---:|",
        ]
        for turn in turns:
            first, *others = turn.rps
            rounds = len(turn.rps[first])
            lines.append(
                f"| {turn.scenario} | {turn.connections} | {rounds} | {first} "
                f"| {turn.median_rps(first):.0f} | |"
            )
            for name in others:
                over = turn.median_ratio(name)
                shown = f"**{over:.2f}x**" if over is not None else "stalled"
                lines.append(f"| | | | {name} | {turn.median_rps(name):.0f} | {shown} |")
    pooled, unpooled = (
        rps("tutorial PG", "one", headline_c),
        rps("tutorial PG NullPool", "one", headline_c),
    )
    lines += [
        "",
        f"The seeds' claim, pooled against unpooled (the tutorial on PostgreSQL, "
        f"GET /products/{{id}}, {headline_c} connections): {pooled or 0:.0f} against "
        f"{unpooled or 0:.0f} req/s, {ratio(pooled, unpooled)}. Opening one PostgreSQL "
        f"connection (psycopg2, TCP, trust auth) costs {connection_ms or 0:.2f} ms (median).",
        "",
        "| configuration | scenario | connections | req/s | p50 ms | p99 ms | errors "
        "| round trips/req | peak RSS/worker MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, report in reports.items():
        rss = "/".join(f"{value:.0f}" for value in report.peak_rss)
        for result in report.results:
            trips_here = report.round_trips.get(result.scenario)
            latency = (
                "stalled | stalled"
                if result.requests == 0
                else f"{result.p50:.1f} | {result.p99:.1f}"
            )
            lines.append(
                f"| {name} | {result.scenario} | {result.connections} | {result.rps:.0f} "
                f"| {latency} | {result.errors:.0f} "
                f"| {'' if trips_here is None else f'{trips_here:.2f}'} | {rss} |"
            )
    for result in {r.connections: r for r in database}.values():  # capped counts repeat
        lines.append(
            f"| {result.config} | point select | {result.connections} | {result.rps:.0f} "
            f"| {result.p50:.2f} (mean) | | 0 | 1 | |"
        )
    return "\n".join(lines) + "\n"


def versions() -> str:
    from importlib.metadata import version

    names = ("fastapi", "sqlalchemy", "asyncpg", "uvicorn", "pydantic")
    return ", ".join(f"{name} {version(name)}" for name in names)


def chart(reports: dict[str, ConfigReport], connections: int, path: Path) -> None:
    """Throughput and p99 per configuration and scenario, at `connections`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = ["one", "page", "search", "orders", "live"]
    names = list(reports)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        found = {r.scenario: r for r in reports[name].results if r.connections == connections}
        xs = [n + index * width for n, s in enumerate(scenarios) if s in found]
        top.bar(xs, [found[s].rps for s in scenarios if s in found], width, label=name)
        bottom.bar(xs, [found[s].p99 for s in scenarios if s in found], width, label=name)
    top.set_ylabel("requests/s")
    bottom.set_ylabel("p99 ms (log)")
    bottom.set_yscale("log")
    bottom.set_xticks([n + 0.4 - width / 2 for n in range(len(scenarios))], scenarios)
    top.set_title(f"catalog against its baselines, {connections} connections (higher is better)")
    bottom.set_title("p99 latency (lower is better)")
    top.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def write_docs(table: str) -> None:
    text = DOCS.read_text()
    start_at, end_at = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOCS.write_text(text[:start_at] + "\n" + table + "\n" + text[end_at:])


def ensure_wrk() -> None:
    """wrk is a Debian package: installed here when missing and this is root on Debian."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("the suite needs wrk: sudo apt-get install wrk")
    print("installing wrk (apt-get)", flush=True)
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)


async def reachable(url: str) -> bool:
    engine = create_engine(Settings(database_url=url, connect_timeout=3), pooled=False)
    try:
        async with engine.connect():
            return True
    except DBAPIError:
        return False
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--configs", nargs="+", default=None, help="names, as in CONFIGS")
    parser.add_argument("--reuse", action="store_true", help="keep data already seeded")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="CI: small, short, checked")
    parser.add_argument("--smoke-load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--round-trip-requests", type=int, default=200)
    parser.add_argument(
        "--turn-rounds", type=int, default=3, help="rounds of 5 s for the headline in turns"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.products, args.seconds, args.warmup = 1000, 1, 1
        args.connections, args.round_trip_requests, args.smoke_load = [16], 20, True
    ensure_wrk()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="catalog-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    configs = [c for c in CONFIGS if args.configs is None or c.name in args.configs]
    for backend in sorted({c.backend for c in configs} - {"sqlite"}):
        if not asyncio.run(reachable(database_url(backend, workdir))):
            # As in the tests: CI expects every backend; a laptop runs what it has.
            if os.environ.get("CI"):
                raise SystemExit(f"{backend} is expected in CI but unreachable")
            print(f"SKIPPED: {backend} is unreachable; its configurations do not run")
            configs = [c for c in configs if c.backend != backend]

    reports: dict[str, ConfigReport] = {}
    tokens: dict[str, str] = {}
    for config in configs:
        url = database_url(config.backend, workdir)
        if config.backend not in tokens:
            print(f"{config.backend}: preparing {args.products:,} products", flush=True)
            tokens[config.backend] = asyncio.run(prepare_data(url, args.products, args.reuse))
        print(f"{config.name}", flush=True)
        paths = scripts(workdir / config.backend, args.products, tokens[config.backend])
        reports[config.name] = run_config(config, url, tokens[config.backend], args, paths)

    # The headline again, in turns. The smoke run keeps the code path alive, 1 s a round.
    rounds, round_seconds = (1, 1) if args.smoke else (args.turn_rounds, 5)
    turns = []
    by_name = {config.name: config for config in configs}
    for scenario, connections, names in IN_TURNS:
        if rounds == 0 or not all(name in by_name for name in names):
            continue
        backend = by_name[names[0]].backend
        url = database_url(backend, workdir)
        script = scripts(workdir / backend, args.products, tokens[backend])[scenario]
        connections = connections if connections in args.connections else args.connections[0]
        turns.append(
            measure_in_turns(
                [by_name[name] for name in names], url, script, scenario, connections,
                rounds, round_seconds,
            )
        )  # fmt: skip

    database: list[Result] = []
    connection_ms = None
    if any(c.backend == "postgresql" for c in configs):
        url = SERVER_URLS["postgresql"]
        if shutil.which("pgbench") is None:
            raise SystemExit("pgbench (Debian package postgresql) is needed for the ceiling")
        # pgbench holds one server connection per client: stay under max_connections.
        for clients in sorted({min(connections, 64) for connections in args.connections}):
            database.append(pgbench(url, args.products, args.seconds, clients, workdir))
        connection_ms = connection_cost_ms(url)
    table = markdown(reports, database, args, connection_ms, turns)
    print("\n" + table)
    (workdir / "results.json").write_text(
        json.dumps({name: [r.__dict__ for r in rep.results] for name, rep in reports.items()})
    )
    if args.write_docs:
        write_docs(table)
        chart(reports, 64 if 64 in args.connections else args.connections[0], CHART)
        print(f"wrote {DOCS} and {CHART}")


if __name__ == "__main__":
    main()
