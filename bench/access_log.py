"""What an access log costs the one-row read: none, uvicorn's, and catalog's own (text
and JSON lines), each on its own uvicorn worker, measured in turns.

    python bench/access_log.py [--rounds 5] [--seconds 5] [--connections 32]
    python bench/access_log.py --in-process [--rounds 7] [--requests 3000]

Every variant serves at once from one SQLite file (1,000 products), each idle while
another is measured; each round runs `wrk` on `GET /products/{id}` on every variant in
turn, and the table gives the median requests/s and p99 and the median of each round's
ratio to the variant without any access log. The servers write their log to a file,
as under a process manager; the lines written are counted to check that each variant
logged what it should (one line per request, or none).

--in-process: the CPU time per request of catalog's app called as ASGI (no sockets,
bench/asgi_cost.py's way), without and with its access line, text and JSON, written
to a file: the cost of a line alone, free of the noise of a shared machine's load.
"""

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import logging.config
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from asgi_cost import _read_one, cpu_us_per_request
from common import run_wrk, seeded_schema, server_process

from catalog.config import Settings
from catalog.logs import JsonLineFormatter, TextFormatter, logging_config
from catalog.main import create_app

PRODUCTS = 1000

VARIANTS = {
    # name: (catalog's access log on, uvicorn options)
    "no access log": (False, ()),
    "uvicorn's access log": (False, ("--access-log", "--log-level", "info")),
    "catalog's, text": (True, ("--log-config", "{text}")),
    "catalog's, JSON": (True, ("--log-config", "{json}")),
}


async def in_process(workdir: Path, rounds: int, requests: int) -> None:
    url = f"sqlite+inline:///{workdir / 'catalog.db'}"
    await seeded_schema(url, PRODUCTS)
    config = logging_config(Settings(database_url=url, log_format="text"))
    config["handlers"]["stderr"] = {
        "class": "logging.FileHandler",
        "filename": str(workdir / "access.log"),
        "formatter": "catalog",
        "filters": ["request_id"],
    }
    logging.config.dictConfig(config)
    handler = logging.getLogger().handlers[0]
    formatters = {"text": TextFormatter(), "JSON": JsonLineFormatter()}
    quiet = create_app(Settings(database_url=url, access_log=False))
    logged = create_app(Settings(database_url=url, access_log=True))
    cases = {"no access log": (quiet, "text"), "text": (logged, "text"), "JSON": (logged, "JSON")}
    figures: dict[str, list[float]] = {name: [] for name in cases}
    async with contextlib.AsyncExitStack() as stack:
        for app in (quiet, logged):
            await stack.enter_async_context(app.router.lifespan_context(app))
        for round_number in range(rounds + 1):  # round 0 warms up
            for name, (app, form) in cases.items():
                handler.setFormatter(formatters[form])
                cpu = await cpu_us_per_request(
                    functools.partial(_read_one, app, PRODUCTS), requests, 1
                )
                if round_number:
                    figures[name].append(cpu)
    lines = (workdir / "access.log").read_text().count("\n")
    print(
        f"\n`GET /products/{{id}}` as ASGI calls, SQLite, CPU per request, median of "
        f"{rounds} rounds in turns ({lines} lines written)"
    )
    print("| access log | CPU per request | cost of the line |")
    print("|---|---:|---:|")
    floor = statistics.median(figures["no access log"])
    for name, values in figures.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median:.1f} µs | {median - floor:+.1f} µs ({median / floor - 1:+.1%}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    if args.in_process:
        with tempfile.TemporaryDirectory(prefix="catalog-access-log-") as tmp:
            asyncio.run(in_process(Path(tmp), args.rounds, args.requests))
        return
    with tempfile.TemporaryDirectory(prefix="catalog-access-log-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite+inline:///{workdir / 'catalog.db'}"
        asyncio.run(seeded_schema(url, PRODUCTS))
        configs = {}
        for name in ("text", "json"):
            configs[name] = workdir / f"logging-{name}.json"
            config = logging_config(Settings(database_url=url, log_format=name))  # type: ignore[arg-type]
            configs[name].write_text(json.dumps(config))
        script = workdir / "one.lua"
        script.write_text(
            "math.randomseed(os.time() + os.clock() * 1000000)\n"
            "request = function()\n"
            f'  return wrk.format("GET", "/products/" .. math.random(1, {PRODUCTS}))\nend\n'
        )
        rps: dict[str, list[float]] = {name: [] for name in VARIANTS}
        p99: dict[str, list[float]] = {name: [] for name in VARIANTS}
        ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
        with ExitStack() as stack:
            servers = {}
            for name, (catalog_log, options) in VARIANTS.items():
                env = {"CATALOG_DATABASE_URL": url, "CATALOG_ACCESS_LOG": str(catalog_log).lower()}
                options = tuple(
                    option.format(text=configs["text"], json=configs["json"]) for option in options
                )
                servers[name] = stack.enter_context(
                    server_process(
                        "catalog.main:served_app", env, factory=True, uvicorn_options=options
                    )
                )
            for server in servers.values():  # warm-up
                run_wrk(server.base_url, script, 2, args.connections)
            for round_number in range(1, args.rounds + 1):
                measured = {
                    name: run_wrk(server.base_url, script, args.seconds, args.connections)
                    for name, server in servers.items()
                }
                floor = measured["no access log"]["rps"]
                for name, figures in measured.items():
                    rps[name].append(figures["rps"])
                    p99[name].append(figures["p99"])
                    ratios[name].append(figures["rps"] / floor)
                print(
                    f"  round {round_number}: "
                    + ", ".join(
                        f"{name} {figures['rps']:.0f}/s" for name, figures in measured.items()
                    ),
                    flush=True,
                )
    print(f"\n`GET /products/{{id}}`, 1 worker, {args.connections} connections, SQLite, "
          f"{args.rounds} rounds of {args.seconds} s in turns")  # fmt: skip
    print("| access log | requests/s | p99 | throughput vs none |")
    print("|---|---:|---:|---:|")
    for name in VARIANTS:
        print(
            f"| {name} | {statistics.median(rps[name]):,.0f} | "
            f"{statistics.median(p99[name]):.1f} ms | {statistics.median(ratios[name]):.2f}x |"
        )


if __name__ == "__main__":
    main()
