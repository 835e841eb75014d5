"""What a conditional GET saves: `GET /products/{id}` answered 304 against answered 200.

    python bench/conditional.py [--products 10000] [--rounds 7] [--seconds 5]
                                [--connections 64]
    python bench/conditional.py --in-process [--requests 3000] [--rounds 7]

One server, `catalog.main:served_app` under uvicorn as `catalog serve` runs it
(bench/common.py's catalog_server), on a throwaway SQLite database with --products demo
products (every one at version 1), neither uvicorn's access log nor the app's
(CATALOG_ACCESS_LOG) on: both paths would pay the same line. Three wrk scripts ask for a
random product each time:

- `200`: no If-None-Match (a first visit);
- `200 stale`: `If-None-Match: "0"`, a tag the product has moved past (the header is
  parsed and compared, the body sent);
- `304`: `If-None-Match: "1"`, the current tag (the product is still read, its body is
  neither serialized nor sent).

Each round runs the three in turn, the order rotating by round, so that the ratios of a
round are taken seconds apart on a machine whose speed drifts (a shared host). The table
gives the median requests/s and p99 over the rounds, and the median of the per-round
ratios of each to `200`.

--in-process measures the same three answers without sockets or a server: the app
called as ASGI (bench/asgi_cost.py's way), one request after the other, CPU time per
request, the median of the rounds; steadier than wrk on a shared machine, as other
processes' load does not count.
"""

import argparse
import asyncio
import contextlib
import functools
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

import uvloop
from asgi_cost import call, cpu_us_per_request
from common import catalog_server, database_url, run_wrk, seeded_schema
from suite import ensure_wrk

from catalog.config import Settings
from catalog.main import create_app

CASES = {"200": None, "200 stale": '"0"', "304": '"1"'}


def script(workdir: Path, name: str, products: int, if_none_match: str | None) -> Path:
    """A wrk script: GET /products/{random id}, with this If-None-Match if any."""
    headers = "{}" if if_none_match is None else f"{{[\"If-None-Match\"] = '{if_none_match}'}}"
    path = workdir / f"conditional-{name.replace(' ', '-')}.lua"
    path.write_text(
        "math.randomseed(os.time() + os.clock() * 1000000)\n"
        "request = function()\n"
        f'  return wrk.format("GET", "/products/" .. math.random(1, {products}), {headers})\n'
        "end\n"
    )
    return path


async def _get(app: Any, products: int, if_none_match: str | None) -> int:
    """One GET /products/{random id} through `app` as ASGI; returns the status."""
    headers = () if if_none_match is None else ((b"if-none-match", if_none_match.encode()),)
    return await call(app, f"/products/{random.randint(1, products)}", headers=headers)


async def in_process(url: str, products: int, requests: int, rounds: int) -> None:
    await seeded_schema(url, products)
    app = create_app(Settings(database_url=url, access_log=False))
    figures: dict[str, list[float]] = {name: [] for name in CASES}
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        cases = {name: functools.partial(_get, app, products, tag) for name, tag in CASES.items()}
        for name, request in cases.items():
            assert await request() == (304 if name == "304" else 200), name
            await cpu_us_per_request(request, 300, 1)  # warm up
        names = list(CASES)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                figures[name].append(await cpu_us_per_request(cases[name], requests, 1))
    print(f"\n`GET /products/{{id}}` as ASGI in-process, {rounds} rounds of {requests}\n")
    print("| answer | CPU per request (median) | over `200` |")
    print("|---|---:|---:|")
    first = statistics.median(figures["200"])
    for name in names:
        cost = statistics.median(figures[name])
        print(f"| `{name}` | {cost:.1f} µs | {cost / first:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--in-process", action="store_true", help="as ASGI, CPU per request")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="catalog-conditional-"))
    url = database_url("sqlite", workdir)
    if args.in_process:
        uvloop.run(in_process(url, args.products, args.requests, args.rounds))
        return
    ensure_wrk()
    asyncio.run(seeded_schema(url, args.products))
    scripts = {name: script(workdir, name, args.products, tag) for name, tag in CASES.items()}
    rps: dict[str, list[float]] = {name: [] for name in CASES}
    p99: dict[str, list[float]] = {name: [] for name in CASES}
    ratios: dict[str, list[float]] = {name: [] for name in CASES}
    env = {"CATALOG_DATABASE_URL": url, "CATALOG_ACCESS_LOG": "false"}
    with catalog_server(env) as server:
        for name, path in scripts.items():  # warm-up, and each script checked once
            result = run_wrk(server.base_url, path, 2, args.connections)
            if result["non2xx"] and name != "304":
                raise SystemExit(f"{name}: {result['non2xx']:.0f} answers were not 2xx or 3xx")
        names = list(CASES)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            measured = {}
            for name in names[shift:] + names[:shift]:
                result = run_wrk(server.base_url, scripts[name], args.seconds, args.connections)
                measured[name] = result
                rps[name].append(result["rps"])
                p99[name].append(result["p99"])
            for name in names:
                ratios[name].append(measured[name]["rps"] / measured["200"]["rps"])
            print(
                f"  round {round_number + 1}: "
                + ", ".join(
                    f"{name} {measured[name]['rps']:.0f}/s p99 {measured[name]['p99']:.1f} ms"
                    for name in names
                ),
                flush=True,
            )
    print(
        f"\n`GET /products/{{id}}` at {args.connections} connections, {args.rounds} rounds "
        f"of {args.seconds} s, {args.products:,} products on SQLite, one worker\n"
    )
    print("| answer | requests/s (median) | p99 (median) | over `200` (median of rounds) |")
    print("|---|---:|---:|---:|")
    for name in names:
        print(
            f"| `{name}` | {statistics.median(rps[name]):.0f} | "
            f"{statistics.median(p99[name]):.1f} ms | {statistics.median(ratios[name]):.2f}x |"
        )


if __name__ == "__main__":
    main()
