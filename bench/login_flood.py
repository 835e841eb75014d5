"""Reads while sign-ins flood the service: before and after the sign-in fixes, in turns.

    python bench/login_flood.py [--backend postgresql] [--before REF] [--rounds 3]
        [--seconds 8] [--flood 24]

A sign-in checks an argon2 hash (about 0.1 s of a core, 64 MiB). Before issue 14's fix,
POST /auth/token held its pooled connection while the hash ran, and hashes ran 40 at a
time in the thread pool: a flood of wrong passwords took every connection and read
latency went from milliseconds to seconds. Three servers run at once, each idle while
another is measured, on one database seeded with 1,000 products and one account:

- before: the service at git ref REF (default: the last commit before the fix), from a
  worktree;
- after, no rate limit: this checkout with the rate limits off, so the whole flood
  reaches the hashing (what the bound on concurrent hashes alone does);
- after, from one address: this checkout as shipped, the flood from one address (it
  gets 429s past the account-and-address limit);
- after, from many addresses: the same, each flooding request from another address
  (X-Forwarded-For, trusted from this host), which no per-address limit stops: the
  account's own limit slows the flood down instead.

Meanwhile the account's owner signs in with the right password from another address,
one try after another (the "before" server does not trust the forwarded address: its
owner shares the flood's).

Each round, per server: 1 s of reads alone, then `--flood` wrk connections sending wrong
passwords for the account while one client reads GET /products/{id} one after another.
Reported per server: the reads' median and p99 latency and failures under flood (and
alone), sign-in answers per second by status, and the server's peak RSS. One uvicorn
worker each, default pool (5 + 5). The database is wiped first (bench/common.py).
"""

import argparse
import asyncio
import contextlib
import re
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
from pwdlib import PasswordHash
from sqlalchemy import insert
from suite import ensure_wrk

from catalog.config import Settings
from catalog.db.base import utcnow
from catalog.db.engine import create_engine
from catalog.products.seed import seed_products
from catalog.users.models import Role, User

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "e373078"  # main before issue 14's sign-in fixes
EMAIL = "flooded@example.com"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "username=flooded%40example.com&password=not+the+password"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Forwarded-For"] = "203.0.113.9"
"""
# The same flood, each request from another address (the servers that trust this host
# as a proxy believe X-Forwarded-For): what no per-address limit stops.
WRK_SPREAD_SCRIPT = """
wrk.method = "POST"
wrk.body = "username=flooded%40example.com&password=not+the+password"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  wrk.headers["X-Forwarded-For"] = math.random(1, 223) .. "." .. math.random(0, 255)
    .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format(nil)
end
"""
OWNER = {"X-Forwarded-For": "198.51.100.7"}


@dataclass
class Result:
    idle_ms: list[float] = field(default_factory=list)
    flood_ms: list[float] = field(default_factory=list)
    failed_reads: int = 0
    reads: int = 0
    sign_ins: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    # The account's owner signing in with the right password during the flood, from
    # another address: the answers' statuses and times.
    owner: Counter[int] = field(default_factory=Counter)
    owner_ms: list[float] = field(default_factory=list)


async def prepare(url: str) -> None:
    await fresh_schema(url)
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        await seed_products(engine, count=1000, seed=1)
        async with engine.begin() as connection:
            await connection.execute(
                insert(User).values(
                    email=EMAIL,
                    password_hash=PasswordHash.recommended().hash("the password"),
                    role=Role.CUSTOMER.value,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    finally:
        await engine.dispose()


def _reads(base_url: str, until: float, into: list[float]) -> int:
    """Read one product after another until `until`; latencies into `into`; failures."""
    failures = 0
    with httpx.Client(base_url=base_url, timeout=10) as client:
        n = 0
        while time.monotonic() < until:
            n += 1
            started = time.perf_counter()
            try:
                ok = client.get(f"/products/{n % 1000 + 1}").status_code == 200
            except httpx.HTTPError:
                ok = False
            into.append((time.perf_counter() - started) * 1000)
            failures += not ok
    return failures


def _owner(base_url: str, until: float, result: Result) -> None:
    """The owner signs in with the right password, one try after another."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                status = client.post(
                    "/auth/token",
                    data={"username": EMAIL, "password": "the password"},
                    headers=OWNER,
                ).status_code
            except httpx.HTTPError:
                status = 0
            result.owner_ms.append((time.perf_counter() - started) * 1000)
            result.owner[status] += 1
            time.sleep(0.5)


def _flood(base_url: str, seconds: int, connections: int, script: Path) -> None:
    """wrk sending wrong passwords (the server's metrics count the answers)."""
    subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(script), f"{base_url}/auth/token"],
        capture_output=True, check=True,
    )  # fmt: skip


def status_counts(base_url: str, route: str = "/auth/token") -> Counter[int]:
    """What the server answered on `route`, by status, from its own metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    counts: Counter[int] = Counter()
    for line in text.splitlines():
        if line.startswith("catalog_http_requests_total") and route in line:
            status = re.search(r'status="(\d+)"', line)
            if status:
                counts[int(status.group(1))] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def measure(base_url: str, seconds: int, flood: int, script: Path, result: Result) -> None:
    _reads(base_url, time.monotonic() + 1, result.idle_ms)
    reads: list[float] = []
    failures: list[int] = []
    until = time.monotonic() + seconds
    reader = threading.Thread(target=lambda: failures.append(_reads(base_url, until, reads)))
    owner = threading.Thread(target=_owner, args=(base_url, until, result))
    reader.start()
    owner.start()
    _flood(base_url, seconds, flood, script)
    reader.join()
    owner.join()
    result.flood_ms += reads
    result.reads += len(reads)
    result.failed_reads += sum(failures)
    result.seconds += seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "mariadb"])
    parser.add_argument(
        "--before",
        default="",
        help=f"git ref of a 'before' server ({BEFORE}: before issue 14), which must know "
        "the schema's revision; none by default",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--flood", type=int, default=24, help="wrk connections signing in")
    args = parser.parse_args()
    ensure_wrk()
    url = SERVER_URLS[args.backend]
    asyncio.run(prepare(url))
    workdir = Path(tempfile.mkdtemp(prefix="catalog-login-flood-"))
    script = workdir / "flood.lua"
    script.write_text(WRK_SCRIPT)
    spread = workdir / "spread.lua"
    spread.write_text(WRK_SPREAD_SCRIPT)
    worktree = workdir / "before"
    if args.before:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before],
            check=True, capture_output=True,
        )  # fmt: skip
    common = {
        "CATALOG_DATABASE_URL": url,
        "CATALOG_JWT_SECRET": "b" * 48,
        "CATALOG_METRICS_PUBLIC": "true",
    }
    off = {
        f"CATALOG_RATE_LIMIT_{name}": ""
        for name in (
            "LOGIN_PER_ADDRESS",
            "LOGIN_PER_ACCOUNT_AND_ADDRESS",
            "LOGIN_PER_ACCOUNT",
            "SIGNUP_PER_ADDRESS",
        )
    }
    trusted = {**common, "CATALOG_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    # name: (environment, the old checkout or None, the flood's script)
    configs = {
        **({"before": (common, worktree / "src", script)} if args.before else {}),
        "after, no rate limit": ({**trusted, **off}, None, script),
        "after, from one address": (trusted, None, script),
        "after, from many addresses": (trusted, None, spread),
    }
    results = {name: Result() for name in configs}
    try:
        with contextlib.ExitStack() as stack:
            servers = {
                name: stack.enter_context(
                    server_process(
                        # The old commit froze the collector in create_app itself.
                        "catalog.main:served_app" if app_dir is None else "catalog.main:create_app",
                        env,
                        factory=True,
                        app_dir=app_dir,
                        ready_path="/health/ready",
                    )
                )
                for name, (env, app_dir, _) in configs.items()
            }
            for round_number in range(args.rounds):
                for name, server in servers.items():
                    print(f"round {round_number + 1}: {name}", file=sys.stderr)
                    flood_script = configs[name][2]
                    measure(server.base_url, args.seconds, args.flood, flood_script, results[name])
            for name, server in servers.items():
                results[name].peak_rss_mib = max(server.peak_rss_mib())
                results[name].sign_ins.update(status_counts(server.base_url))
    finally:
        if args.before:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                check=False, capture_output=True,
            )  # fmt: skip
    print(
        f"\n{args.backend}, {args.rounds} rounds of {args.seconds} s, {args.flood} connections "
        "signing in with a wrong password, one client reading GET /products/{id}\n"
    )
    print("| server | read alone p50 | read under flood p50 / p99 | failed reads "
          "| sign-in answers/s (401 / 429 / 503) | owner signed in (p50 time) "
          "| peak RSS |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        per_second = {s: r.sign_ins.get(s, 0) / r.seconds for s in (401, 429, 503)}
        answered = sum(r.sign_ins.values()) / r.seconds
        print(
            f"| {name} | {statistics.median(r.idle_ms):.1f} ms "
            f"| {statistics.median(r.flood_ms):.1f} / {percentile(r.flood_ms, 0.99):.0f} ms "
            f"| {r.failed_reads} of {r.reads} "
            f"| {answered:.0f} ({per_second[401]:.0f} / {per_second[429]:.0f}"
            f" / {per_second[503]:.0f}) "
            f"| {r.owner.get(200, 0)} of {sum(r.owner.values())}"
            f" ({statistics.median(r.owner_ms or [0]) / 1000:.1f} s) "
            f"| {r.peak_rss_mib:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
