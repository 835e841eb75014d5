"""What the middlewares of issue 14 cost each request: catalog's app with and without them.

    python bench/middleware_cost.py [--backend sqlite|postgresql] [--requests 3000]
                                    [--rounds 7]

Two apps from `create_app()` on one database (seeded with 1,000 products), one as
shipped and one without HeadAsGetMiddleware, ShutdownDeadlineMiddleware and
UnhandledErrorMiddleware, called directly as ASGI (bench/asgi_cost.py's way: no
sockets, one request after the other). CPU per request, the median of --rounds rounds,
the two apps in turn within each round; `GET /health/live` (no database) shows the
middlewares alone, `GET /products/{id}` their share of a read.
"""

import argparse
import contextlib
import functools
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop
from asgi_cost import _read_one, call, cpu_us_per_request
from common import database_url, seeded_schema

from catalog.config import Settings
from catalog.errors import UnhandledErrorMiddleware
from catalog.head import HeadAsGetMiddleware
from catalog.main import create_app
from catalog.shutdown import ShutdownDeadlineMiddleware

ISSUE_14 = (HeadAsGetMiddleware, ShutdownDeadlineMiddleware, UnhandledErrorMiddleware)
PRODUCTS = 1000


async def measure(url: str, requests: int, rounds: int) -> None:
    await seeded_schema(url, PRODUCTS)
    settings = Settings(database_url=url)
    shipped, without = create_app(settings), create_app(settings)
    without.user_middleware = [m for m in without.user_middleware if m.cls not in ISSUE_14]
    cases: dict[str, Callable[[], Awaitable[int]]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, app in (("shipped", shipped), ("without", without)):
            await stack.enter_async_context(app.router.lifespan_context(app))
            cases[f"{name} /health/live"] = functools.partial(call, app, "/health/live")
            cases[f"{name} /products/{{id}}"] = functools.partial(_read_one, app, PRODUCTS)
        for request in cases.values():  # warm up
            await cpu_us_per_request(request, 300, 1)
        figures: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, request in cases.items():
                figures[name].append(await cpu_us_per_request(request, requests, 1))
    print("| request | without | shipped | difference |")
    print("|---|---:|---:|---:|")
    for path in ("/health/live", "/products/{id}"):
        before = statistics.median(figures[f"without {path}"])
        after = statistics.median(figures[f"shipped {path}"])
        print(f"| `GET {path}` | {before:.1f} µs | {after:.1f} µs | {after - before:+.1f} µs |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    url = database_url(args.backend, Path(tempfile.mkdtemp(prefix="catalog-mw-")))
    uvloop.run(measure(url, args.requests, args.rounds))


if __name__ == "__main__":
    main()
