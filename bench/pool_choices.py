"""Three choices of the pool, decided by figures: overflow linger, FIFO waits, SQLite driver.

The figures in docs/architecture.md ("The pool", "SQLite") came from this script at
commit 75d6e9f, with the variant code of bench/pool_choices.variants.diff applied to it
(`git worktree add /tmp/choices 75d6e9f && git -C /tmp/choices apply
$PWD/bench/pool_choices.variants.diff`, then run the script there). The decisions it
led to changed the code: on later commits the linger is gone (CATALOG_POOL_OVERFLOW_LINGER
is no setting; question 1's variants (a) and (b) are the same pool) and the default pool
is question 1's (c). Question 3 runs as it is on any commit.

    python bench/pool_choices.py [--questions linger fairness sqlite] [--rounds 7]
                                 [--seconds 8] [--warmup 2] [--products 100000]
                                 [--json FILE]

1. linger (PostgreSQL): `one` (GET /products/{random id}) at 16 and 64 wrk connections
   and `mixed` (4 in 5 requests that read, 1 in 5 a PATCH of a random product's stock)
   at 32, on (a) the defaults, pool 5 + 5 whose overflow lingers 30 s, (b) the same
   sizes with CATALOG_POOL_OVERFLOW_LINGER=0 (SQLAlchemy's behaviour: an overflow
   connection is closed when it comes back), (c) 10 + 0, no overflow. The connections
   opened during each run come from GET /health/pool.
2. fairness (PostgreSQL): `one` and `page` at 64 connections, pool 5 + 5, on (a) FairQueue
   as shipped, (b) SQLAlchemy's own asyncio queue (POOLBENCH_QUEUE=stock), (c) that queue
   behind a FIFO gate of public asyncio API (POOLBENCH_QUEUE=stock POOLBENCH_GATE=fifo:
   catalog.db.session.PoolGate, an asyncio.Semaphore(pool_size + max_overflow) around
   each Reader statement and each request's session), (d) the same gate with 10 + 0 and
   (e) the stock queue with 10 + 0 (no overflow connections to close and reopen, which
   the stock queue cannot keep lingering). (b) to (e) need the variant code of
   variants.diff; without it they are left out.
3. sqlite: `sqlite+inline` (catalog's dialect) against `sqlite+aiosqlite`, each on a file
   of its own: one-row reads (8 connections), the suite's search (4), a scan (4: GET
   /products?in_stock=true&count=exact, which counts every row) and PATCHes of stock (4),
   each alone; then reads, searches and PATCHes at once, and reads, scans and PATCHes at
   once; one wrk thread per load.

Every variant's server (`catalog serve`'s app, one worker) starts once per question and
stays up, idle while another is measured. Each load runs on each variant in turn (A, B,
C, then A, B, C again) for --rounds rounds of --seconds, after a --warmup on each. The
tables give the median of the per-round values, and each variant's requests/s and p99
over the first variant's in the same round (median, and the range over the rounds: the
noise).
Latencies are wrk's (p99.9 through a Lua `done`); 503s are counted from /metrics.

PostgreSQL is a throwaway server of the script's own (tests/throwaway.py: initdb in a
temporary directory, a free port, fsync off), stopped at the end; the shared servers of
the tests are never used. Needs wrk (Debian package `wrk`) and PostgreSQL's initdb/pg_ctl.
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import catalog_server
from suite import HOT, ensure_wrk, prepare_data, scripts

from catalog.db import pool as catalog_pool
from catalog.db import session as catalog_session

REPO = Path(__file__).resolve().parent.parent

# Appended to every wrk script: the figures as one JSON line (wrk's own output stops at p99).
DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, '
    .. '"socket_errors": %d, "p50_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""

# A page whose exact count reads every row: a long statement, for SQLite's drivers.
SCAN = "limit=20&in_stock=true&count=exact"

# PATCHes of products other than the suite's hot ones (which `orders` buys).
WRITES = """math.randomseed(os.time() + os.clock() * 1000000)
headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
request = function()
  local id = math.random(%(first)d, %(n)d)
  if math.random(1, 100) <= %(percent)d then
    local body = '{"stock": ' .. math.random(0, 1000) .. '}'
    return wrk.format("PATCH", "/products/" .. id, headers, body)
  end
  return wrk.format("GET", "/products/" .. id)
end
"""


@dataclass(frozen=True)
class Part:
    """One wrk: a script, its connections and threads."""

    script: str
    connections: int
    threads: int = 2


@dataclass(frozen=True)
class Load:
    """What one measurement runs: one or several wrk at once."""

    name: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    scripts: dict[str, Path]


Figures = dict[str, float]


def write_scripts(workdir: Path, products: int, token: str) -> dict[str, Path]:
    """The suite's scripts (one, page, search, orders, live), `patch` and `mixed`, each
    ending with DONE."""
    paths = scripts(workdir, products, token)
    paths["scan"] = workdir / "scan.lua"
    paths["scan"].write_text(f'wrk.path = "/products?{SCAN}"\n')
    for name, percent in (("patch", 100), ("mixed", 20)):
        paths[name] = workdir / f"{name}.lua"
        values = {"token": token, "first": HOT + 1, "n": products, "percent": percent}
        paths[name].write_text(WRITES % values)
    for path in paths.values():
        path.write_text(path.read_text() + DONE)
    return paths


def server_counts(base_url: str) -> Figures:
    """Connections opened and pool timeouts (/health/pool), 503s answered (/metrics)."""
    pool = httpx.get(f"{base_url}/health/pool", timeout=10).json()
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    answered_503 = sum(
        float(value)
        for value in re.findall(
            r'^catalog_http_requests_total\{.*status="503".*\} (\S+)$', text, re.MULTILINE
        )
    )
    return {
        "connects": float(pool["connects"]),
        "checkout_timeouts": float(pool["checkout_timeouts"]),
        "http_503": answered_503,
    }


def run_load(base_url: str, paths: dict[str, Path], load: Load, seconds: int) -> dict[str, Figures]:
    """Every wrk of the load at once; figures per script, and the server's under "server"."""
    before = server_counts(base_url)
    processes = {}
    for part in load.parts:
        command = ["wrk", f"-t{part.threads}", f"-c{part.connections}", f"-d{seconds}s",
                   "--timeout", "10s", "--latency", "-s", str(paths[part.script]),
                   base_url]  # fmt: skip
        processes[part.script] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    figures = {script: _wrk_figures(process) for script, process in processes.items()}
    after = server_counts(base_url)
    figures["server"] = {key: after[key] - before[key] for key in after}
    return figures


def _wrk_figures(process: "subprocess.Popen[str]") -> Figures:
    output, _ = process.communicate()
    found = re.search(r"^WRK_JSON (.*)$", output, re.MULTILINE)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed:\n{output}")
    raw = json.loads(found.group(1))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50": raw["p50_us"] / 1000,
        "p99": raw["p99_us"] / 1000,
        "p999": raw["p999_us"] / 1000,
        "max": raw["max_us"] / 1000,
        "non2xx": float(raw["non2xx"]),
        "socket_errors": float(raw["socket_errors"]),
    }


# results[load name][variant name] = one entry per round
Results = dict[str, dict[str, list[dict[str, Figures]]]]


def in_turns(
    variants: list[Variant], loads: list[Load], rounds: int, seconds: int, warmup: int
) -> Results:
    """Every variant serves at once; each load runs on each in turn, round after round."""
    results: Results = {load.name: {v.name: [] for v in variants} for load in loads}
    with ExitStack() as stack:
        servers = {v.name: stack.enter_context(catalog_server(v.env)) for v in variants}
        for load in loads:
            for variant in variants:  # connections, prepared statements, caches
                run_load(servers[variant.name].base_url, variant.scripts, load, warmup)
            for round_number in range(1, rounds + 1):
                shown = []
                for variant in variants:
                    figures = run_load(
                        servers[variant.name].base_url, variant.scripts, load, seconds
                    )
                    results[load.name][variant.name].append(figures)
                    rps = "+".join(f"{figures[p.script]['rps']:.0f}" for p in load.parts)
                    shown.append(f"{variant.name.split(' ')[0]} {rps}")
                load_average = os.getloadavg()[0]
                print(
                    f"  {load.name}, round {round_number}: {', '.join(shown)} req/s "
                    f"(load average {load_average:.1f})",
                    flush=True,
                )
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _vs_first(
    runs: list[dict[str, Figures]], first: list[dict[str, Figures]], script: str, key: str
) -> str:
    """Each round's figure over the first variant's in that round: median (range)."""
    if runs is first:
        return "1"
    ratios = [run[script][key] / base[script][key] for run, base in zip(runs, first, strict=True)]
    return f"{_median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def table(results: Results, loads: list[Load], pool_columns: bool) -> str:
    """Markdown: medians over rounds, per load, wrk and variant."""
    head = (
        "| load | wrk | variant | req/s | req/s vs first (range) | p50 ms | p99 ms "
        "| p99 vs first (range) | p99.9 ms |"
    )
    rule = "|---|---|---|---:|---:|---:|---:|---:|---:|"
    if pool_columns:
        head += " connects/run (total) |"
        rule += "---:|"
    head += " 503s | non-2xx | socket errors |"
    rule += "---:|---:|---:|"
    lines = [head, rule]
    for load in loads:
        by_variant = results[load.name]
        first = next(iter(by_variant))
        for part in load.parts:
            wrk = f"{part.script} c={part.connections}"
            for name, runs in by_variant.items():
                figures = [run[part.script] for run in runs]
                server = [run["server"] for run in runs]
                row = (
                    f"| {load.name} | {wrk} | {name} "
                    f"| {_median([f['rps'] for f in figures]):.0f} "
                    f"| {_vs_first(runs, by_variant[first], part.script, 'rps')} "
                    f"| {_median([f['p50'] for f in figures]):.1f} "
                    f"| {_median([f['p99'] for f in figures]):.1f} "
                    f"| {_vs_first(runs, by_variant[first], part.script, 'p99')} "
                    f"| {_median([f['p999'] for f in figures]):.1f} |"
                )
                if pool_columns:
                    connects = [s["connects"] for s in server]
                    row += f" {_median(connects):.0f} ({sum(connects):.0f}) |"
                row += (
                    f" {sum(s['http_503'] for s in server):.0f} "
                    f"| {sum(f['non2xx'] for f in figures):.0f} "
                    f"| {sum(f['socket_errors'] for f in figures):.0f} |"
                )
                lines.append(row)
    return "\n".join(lines)


@contextmanager
def throwaway_postgres(workdir: Path) -> Iterator[str]:
    """A PostgreSQL server of this run's own; its URL. Stopped and deleted on exit."""
    sys.path.insert(0, str(REPO))
    from tests.throwaway import ThrowawayPostgres

    server = ThrowawayPostgres(workdir)  # (it makes a temporary directory of its own)
    try:
        server.start()
        print(f"throwaway PostgreSQL on port {server.port}", flush=True)
        yield server.url
    finally:
        server.stop()


def pool_env(
    url: str, size: int, overflow: int, linger: float = 30, extra: dict[str, str] | None = None
) -> dict[str, str]:
    return {
        "CATALOG_DATABASE_URL": url,
        "CATALOG_POOL_SIZE": str(size),
        "CATALOG_MAX_OVERFLOW": str(overflow),
        "CATALOG_POOL_OVERFLOW_LINGER": f"{linger:g}",
        **(extra or {}),
    }


# A question: its variants and loads, and whether its table shows the pool's counts.
Question = tuple[list[Variant], list[Load], bool]


def linger_question(url: str, paths: dict[str, Path]) -> Question:
    variants = [
        Variant("(a) 5+5, linger 30 s", pool_env(url, 5, 5, 30), paths),
        Variant("(b) 5+5, linger 0", pool_env(url, 5, 5, 0), paths),
        Variant("(c) 10+0", pool_env(url, 10, 0), paths),
    ]
    loads = [
        Load("one c=16", (Part("one", 16),)),
        Load("one c=64", (Part("one", 64),)),
        Load("mixed c=32", (Part("mixed", 32),)),
    ]
    return variants, loads, True


def fairness_question(url: str, paths: dict[str, Path]) -> Question:
    stock = {"POOLBENCH_QUEUE": "stock"}
    gated = {**stock, "POOLBENCH_GATE": "fifo"}
    variants = [Variant("(a) FairQueue", pool_env(url, 5, 5), paths)]
    if hasattr(catalog_pool, "StockQueuePool") and hasattr(catalog_session, "PoolGate"):
        variants += [
            Variant("(b) stock queue", pool_env(url, 5, 5, extra=stock), paths),
            Variant("(c) stock queue + FIFO gate", pool_env(url, 5, 5, extra=gated), paths),
            Variant("(d) stock queue + FIFO gate, 10+0", pool_env(url, 10, 0, extra=gated), paths),
            # No overflow to close and reopen: the stock queue's waits alone.
            Variant("(e) stock queue, 10+0", pool_env(url, 10, 0, extra=stock), paths),
        ]
    else:
        print("  the stock-queue and gate variants are not in this tree (variants.diff)")
    loads = [Load("one c=64", (Part("one", 64),)), Load("page c=64", (Part("page", 64),))]
    return variants, loads, True


def sqlite_question(workdir: Path, products: int) -> Question:
    variants = []
    for driver in ("inline", "aiosqlite"):
        path = workdir / f"{driver}.db"
        # Seeded through catalog's driver (the same file either way), served through each.
        token = asyncio.run(prepare_data(f"sqlite+inline:///{path}", products, False))
        env = {
            "CATALOG_DATABASE_URL": f"sqlite+{driver}:///{path}",
            "CATALOG_SQLITE_BUSY_TIMEOUT": "30",  # as the suite serves SQLite
        }
        paths = write_scripts(workdir / driver, products, token)
        variants.append(Variant(f"sqlite+{driver}", env, paths))
    read, search, write = Part("one", 8, 1), Part("search", 4, 1), Part("patch", 4, 1)
    scan = Part("scan", 4, 1)
    loads = [
        Load("reads alone", (read,)),
        Load("searches alone", (search,)),
        Load("scans alone", (scan,)),
        Load("writes alone", (write,)),
        Load("mixed, searches", (read, search, write)),
        Load("mixed, scans", (read, scan, write)),
    ]
    return variants, loads, False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--questions", nargs="+", default=["linger", "fairness", "sqlite"],
        choices=["linger", "fairness", "sqlite"],
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None, help="write every round's figures")
    args = parser.parse_args()
    ensure_wrk()
    # One signing key for this process's admin tokens and every server it starts.
    os.environ.setdefault("CATALOG_JWT_SECRET", secrets.token_urlsafe(48))
    workdir = Path(tempfile.mkdtemp(prefix="pool-choices-"))
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds "
        f"of {args.seconds} s after {args.warmup} s of warm-up; {args.products:,} products",
        flush=True,
    )
    tables: dict[str, str] = {}
    raw: dict[str, Results] = {}

    def ask(name: str, question: Question) -> None:
        variants, loads, pool_columns = question
        raw[name] = in_turns(variants, loads, args.rounds, args.seconds, args.warmup)
        tables[name] = table(raw[name], loads, pool_columns)

    try:
        if {"linger", "fairness"} & set(args.questions):
            with throwaway_postgres(workdir) as url:
                token = asyncio.run(prepare_data(url, args.products, False))
                paths = write_scripts(workdir / "postgresql", args.products, token)
                if "linger" in args.questions:
                    print("1. overflow linger (PostgreSQL)", flush=True)
                    ask("linger", linger_question(url, paths))
                if "fairness" in args.questions:
                    print("2. FIFO fairness (PostgreSQL)", flush=True)
                    ask("fairness", fairness_question(url, paths))
        if "sqlite" in args.questions:
            print("3. SQLite driver under mixed load", flush=True)
            ask("sqlite", sqlite_question(workdir, args.products))
    finally:
        if args.json is not None:
            args.json.write_text(json.dumps(raw, indent=1))
        shutil.rmtree(workdir, ignore_errors=True)  # the SQLite files and wrk scripts
    for name, markdown in tables.items():
        print(f"\n### {name}: medians of {args.rounds} rounds of {args.seconds} s\n")
        print(markdown)


if __name__ == "__main__":
    main()
