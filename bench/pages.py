"""The results page against the JSON route (issue 18): `/search` in HTML vs `/products`.

    python bench/pages.py [--products 10000] [--rounds 5] [--seconds 5]
                          [--connections 16 64]
    python bench/pages.py --in-process [--requests 2000] [--rounds 7]
    python bench/pages.py --profile [--requests 2000]
    python bench/pages.py --smoke

Both answers come from the same service call (`product_service.list_products`); the page
also reads the categories for its form and renders results.html with Jinja2. Two pairs:

- search: `GET /products?q=dinosaurs&category=books&limit=20` with `Accept:
  application/json` against `GET /search?...` (same query) with `Accept: text/html`;
- listing: the same without q, `category=books&limit=20&sort=-created_at`.

One server, `catalog.main:served_app` under uvicorn as `catalog serve` runs it
(bench/common.py's catalog_server, one worker, no access log), on a throwaway SQLite
file with --products demo products: never the machine's PostgreSQL or MariaDB. Before
timing, each URL is fetched once and checked: 200, the expected content type, a body
with products in it. Each round runs wrk on the four URLs in turn (the order rotating by
round) at each --connections; the table gives the median requests/s, p50 and p99 over
the rounds and the median of each round's page/JSON ratio, so that a ratio compares
two runs seconds apart on a machine whose speed drifts.

--in-process: the app called as ASGI (bench/asgi_cost.py's way: no sockets, no HTTP
parsing), one request after the other, CPU time per request, the four in turns per
round; the difference page - JSON is what the page adds (categories query + render).

--profile: cProfile over --requests search pages as ASGI calls, the top functions by
own time and by cumulative time, then the parts timed alone: the categories query, the
template render with the context of one page, and the same render under other Jinja2
settings (Undefined instead of StrictUndefined, auto_reload off).
"""

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import uvloop
from asgi_cost import get
from common import catalog_server, database_url, run_wrk, seeded_schema
from suite import ensure_wrk

from catalog.config import Settings
from catalog.main import create_app

JSON, HTML = "application/json", "text/html"
SEARCH = "q=dinosaurs&category=books&limit=20"
LISTING = "category=books&limit=20&sort=-created_at"
# name: (path, query, Accept)
CASES = {
    "search JSON": ("/products", SEARCH, JSON),
    "search page": ("/search", SEARCH, HTML),
    "listing JSON": ("/products", LISTING, JSON),
    "listing page": ("/search", LISTING, HTML),
}
PAIRS = {"search": ("search page", "search JSON"), "listing": ("listing page", "listing JSON")}
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def script(workdir: Path, name: str) -> Path:
    path, query, accept = CASES[name]
    lua = workdir / f"pages-{name.replace(' ', '-')}.lua"
    lua.write_text(
        "request = function()\n"
        f'  return wrk.format("GET", "{path}?{query}", {{["Accept"] = "{accept}"}})\n'
        "end\n"
    )
    return lua


def check(name: str, status: int, content_type: str, body: bytes) -> None:
    """Each answer 200, of its type, with products in it (a search that found nothing
    would make the page cheap for the wrong reason)."""
    accept = CASES[name][2]
    if status != 200 or not content_type.startswith(accept) or not body:
        raise SystemExit(f"{name}: {status} {content_type!r}, {len(body)} bytes")
    found = body.count(b'"sku"') if accept == JSON else body.count(b'class="card"')
    if found == 0:
        raise SystemExit(f"{name}: no product in the answer:\n{body[:500]!r}")


async def call(app: App, name: str) -> tuple[int, str, bytes]:
    """One GET of case `name` through `app` as ASGI; status, content type, body."""
    path, query, accept = CASES[name]
    status, headers, body = await get(app, path, query, ((b"accept", accept.encode()),))
    return status, headers.get(b"content-type", b"").decode(), body


async def cpu_us(app: App, name: str, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await call(app, name)
    return (time.process_time() - started) / requests * 1e6


@contextlib.asynccontextmanager
async def started_app(url: str, products: int) -> Any:
    await seeded_schema(url, products)
    app = create_app(Settings(database_url=url, access_log=False))
    async with app.router.lifespan_context(app):
        for name in CASES:
            check(name, *await call(app, name))
            for _ in range(200):  # warm up
                await call(app, name)
        yield app


async def in_process(url: str, products: int, requests: int, rounds: int) -> None:
    async with started_app(url, products) as app:
        figures: dict[str, list[float]] = {name: [] for name in CASES}
        names = list(CASES)
        for round_number in range(rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                figures[name].append(await cpu_us(app, name, requests))
        sizes = {name: len((await call(app, name))[2]) for name in CASES}
    print(f"\nAs ASGI calls in-process, SQLite, {products:,} products, CPU per request, median")
    print(f"of {rounds} rounds of {requests} in turns\n")
    print("| pair | JSON µs | page µs | page - JSON | page/JSON | bytes JSON / page |")
    print("|---|---:|---:|---:|---:|---:|")
    for pair, (page, api) in PAIRS.items():
        p, j = statistics.median(figures[page]), statistics.median(figures[api])
        ratios = [a / b for a, b in zip(figures[page], figures[api], strict=True)]
        print(
            f"| {pair} | {j:.0f} | {p:.0f} | {p - j:+.0f} | {statistics.median(ratios):.2f}x "
            f"| {sizes[api]:,} / {sizes[page]:,} |"
        )


def _timed(function: Callable[[], Any], times: int) -> float:
    started = time.process_time()
    for _ in range(times):
        function()
    return (time.process_time() - started) / times * 1e6


async def profile(url: str, products: int, requests: int, rounds: int) -> None:
    from jinja2 import Environment, PackageLoader, StrictUndefined, Undefined

    from catalog.products import service as product_service
    from catalog.web import pages

    # catalog.web's `router` is the APIRouter: the module is taken from sys.modules.
    router = sys.modules["catalog.web.router"]

    async with started_app(url, products) as app:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            await call(app, "search page")
        profiler.disable()
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(30)
            print(f"\n--- {requests} search pages as ASGI calls, by {order} ---")
            print(out.getvalue().split("\n", 6)[-1])

        # The parts alone: the categories query, and the render of one page's context.
        reader = app.state.reader
        started = time.process_time()
        for _ in range(requests):
            categories = await product_service.categories(reader=reader)
        categories_us = (time.process_time() - started) / requests * 1e6
        captured: dict[str, Any] = {}
        real_render = router.render

        def capture(request: Any, template: str, context: Any, **kwargs: Any) -> Any:
            captured.update(context, root="", static=lambda name: f"/static/{name}?v=x")
            return real_render(request, template, context, **kwargs)

        router.render = capture  # type: ignore[assignment]
        try:
            check("search page", *await call(app, "search page"))
        finally:
            router.render = real_render  # type: ignore[assignment]
        settings = {"trim_blocks": True, "lstrip_blocks": True}
        loader = PackageLoader("catalog.web", "templates")
        environments = {
            "as served (StrictUndefined, auto_reload on)": pages._templates,
            "Undefined": Environment(
                loader=loader, autoescape=True, undefined=Undefined, **settings
            ),
            "auto_reload off": Environment(
                loader=loader,
                autoescape=True,
                undefined=StrictUndefined,
                auto_reload=False,
                **settings,
            ),
        }
        print(f"\nthe parts alone, CPU per call, median of {rounds} rounds of {requests}")
        print(f"| part | µs |\n|---|---:|\n| categories query ({len(categories)}) "
              f"| {categories_us:.0f} |")  # fmt: skip
        for label, environment in environments.items():
            html = environment.get_template("results.html").render(**captured)
            get = [
                _timed(lambda e=environment: e.get_template("results.html"), requests)
                for _ in range(rounds)
            ]
            whole = [
                _timed(
                    lambda e=environment: e.get_template("results.html").render(**captured),
                    requests,
                )
                for _ in range(rounds)
            ]
            print(f"| get_template, {label} | {statistics.median(get):.1f} |")
            print(f"| get_template + render, {label} ({len(html):,} chars) "
                  f"| {statistics.median(whole):.0f} |")  # fmt: skip

        # What each change would save on the whole page, in turns.
        real_categories = product_service.categories

        async def cached_categories(**_: Any) -> list[str]:
            return categories

        fast = environments["auto_reload off"]
        variants = {
            "as served": (real_categories, pages._templates),
            "categories cached": (cached_categories, pages._templates),
            "auto_reload off": (real_categories, fast),
            "both": (cached_categories, fast),
        }
        figures: dict[str, list[float]] = {name: [] for name in variants}
        try:
            for round_number in range(rounds + 1):  # round 0 warms up
                for name, (categories_function, environment) in variants.items():
                    product_service.categories = categories_function  # type: ignore[assignment]
                    pages._templates = environment
                    check("search page", *await call(app, "search page"))
                    cpu = await cpu_us(app, "search page", requests)
                    if round_number:
                        figures[name].append(cpu)
                json_cpu = await cpu_us(app, "search JSON", requests)
                if round_number:
                    figures.setdefault("search JSON", []).append(json_cpu)
        finally:
            product_service.categories = real_categories  # type: ignore[assignment]
            pages._templates = environments["as served (StrictUndefined, auto_reload on)"]
    print(f"\nthe search page with each change, CPU per request, median of {rounds} rounds")
    print("| variant | µs | saved |\n|---|---:|---:|")
    base = statistics.median(figures["as served"])
    for name, values in figures.items():
        cost = statistics.median(values)
        if name == "search JSON":  # the floor, for reference
            print(f"| the JSON route (reference) | {cost:.0f} | {base - cost:+.0f} |")
        else:
            print(f"| {name} | {cost:.0f} | {base - cost:+.0f} ({1 - cost / base:+.0%}) |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--in-process", action="store_true", help="as ASGI, CPU per request")
    parser.add_argument("--profile", action="store_true", help="cProfile the search page")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s, 16 connections")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.connections, args.requests = 1, 1, [16], 100
    with tempfile.TemporaryDirectory(prefix="catalog-pages-") as tmp:
        url = database_url("sqlite", Path(tmp))
        if args.in_process:
            uvloop.run(in_process(url, args.products, args.requests, args.rounds))
        elif args.profile:
            uvloop.run(profile(url, args.products, args.requests, args.rounds))
        else:
            served(url, Path(tmp), args)


def served(url: str, workdir: Path, args: argparse.Namespace) -> None:
    ensure_wrk()
    asyncio.run(seeded_schema(url, args.products))
    scripts = {name: script(workdir, name) for name in CASES}
    names = list(CASES)
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    ratios: dict[tuple[int, str], list[float]] = {}
    env = {"CATALOG_DATABASE_URL": url, "CATALOG_ACCESS_LOG": "false"}
    with catalog_server(env) as server:
        for name, (path, query, accept) in CASES.items():
            answer = httpx.get(f"{server.base_url}{path}?{query}", headers={"Accept": accept})
            check(name, answer.status_code, answer.headers["content-type"], answer.content)
            run_wrk(server.base_url, scripts[name], 2, args.connections[0])  # warm-up
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for connections in args.connections:
                measured = {}
                for name in names[shift:] + names[:shift]:
                    result = run_wrk(server.base_url, scripts[name], args.seconds, connections)
                    if result["non2xx"] or result["socket_errors"]:
                        raise SystemExit(f"{name}: {result}")
                    measured[name] = result
                    results.setdefault((connections, name), []).append(result)
                for pair, (page, api) in PAIRS.items():
                    ratios.setdefault((connections, pair), []).append(
                        measured[page]["rps"] / measured[api]["rps"]
                    )
                print(
                    f"  round {round_number + 1}, {connections} connections: "
                    + ", ".join(
                        f"{name} {measured[name]['rps']:.0f}/s p99 {measured[name]['p99']:.1f} ms"
                        for name in names
                    ),
                    flush=True,
                )
    print(
        f"\n{args.products:,} products on SQLite, one worker, {args.rounds} rounds of "
        f"{args.seconds} s in turns (medians)\n"
    )
    print("| pair | conns | JSON req/s | page req/s | JSON p50 / p99 ms | page p50 / p99 ms "
          "| page/JSON req/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pair, (page, api) in PAIRS.items():
        for connections in args.connections:

            def median(name: str, key: str, c: int = connections) -> float:
                return statistics.median(r[key] for r in results[(c, name)])

            print(
                f"| {pair} | {connections} | {median(api, 'rps'):,.0f} | "
                f"{median(page, 'rps'):,.0f} | {median(api, 'p50'):.1f} / "
                f"{median(api, 'p99'):.1f} | {median(page, 'p50'):.1f} / "
                f"{median(page, 'p99'):.1f} | "
                f"{statistics.median(ratios[(connections, pair)]):.2f}x |"
            )


if __name__ == "__main__":
    main()
