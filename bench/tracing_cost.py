"""What OpenTelemetry tracing (CATALOG_TRACING) costs each request.

    python bench/tracing_cost.py [--backend sqlite|postgresql] [--requests 3000]
                                 [--rounds 7]

Three apps from `create_app()` on one database (seeded with 1,000 products), called
directly as ASGI (bench/asgi_cost.py's way: no sockets, one request after the other):
tracing off (the default); on without CATALOG_OTLP_ENDPOINT (spans made, then dropped);
and on with the endpoint, exporting over OTLP/HTTP to a sink in another process that
reads each batch and answers 200. CPU per request of this process, its exporter thread
included (each round ends with a flush of the batch, inside the measurement), the
median of --rounds rounds, the apps in turn within each round. `GET /health/live` is not
traced (catalog/tracing.py), so it shows what the instrumentation costs a request it
leaves out; `GET /products/{id}` is a server span and one statement span.
"""

import argparse
import contextlib
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import uvloop
from asgi_cost import _read_one, call
from common import database_url, seeded_schema
from fastapi import FastAPI

from catalog.config import Settings
from catalog.main import create_app

PRODUCTS = 1000
PATHS = ("/health/live", "/products/{id}")

# An OTLP/HTTP receiver that only reads what it is sent: the collector's side of the
# export is not catalog's cost, and runs in its own process so it is not counted.
_SINK = """
import http.server

class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """The base URL of a running OTLP/HTTP sink (CATALOG_OTLP_ENDPOINT's form)."""
    sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        yield f"http://127.0.0.1:{sink.stdout.readline().strip()}"
    finally:
        sink.terminate()
        sink.wait()


async def cpu_us_per_request(
    request: Callable[[], Awaitable[int]], requests: int, app: FastAPI
) -> float:
    started = time.process_time()
    for _ in range(requests):
        await request()
    if app.state.tracer_provider is not None:
        app.state.tracer_provider.force_flush()  # the export's cost is the requests'
    return (time.process_time() - started) / requests * 1e6


async def measure(url: str, requests: int, rounds: int) -> None:
    await seeded_schema(url, PRODUCTS)
    with otlp_sink() as endpoint:
        apps = {
            "off": create_app(Settings(database_url=url)),
            "on, not exported": create_app(Settings(database_url=url, tracing=True)),
            "on, OTLP/HTTP": create_app(
                Settings(database_url=url, tracing=True, otlp_endpoint=endpoint)
            ),
        }
        cases: dict[tuple[str, str], tuple[Callable[[], Awaitable[int]], FastAPI]] = {}
        async with contextlib.AsyncExitStack() as stack:
            for name, app in apps.items():
                await stack.enter_async_context(app.router.lifespan_context(app))
                health = functools.partial(call, app, "/health/live")
                cases[name, "/health/live"] = (health, app)
                cases[name, "/products/{id}"] = (functools.partial(_read_one, app, PRODUCTS), app)
            for (name, path), (request, _) in cases.items():  # warm up, check answers
                for _ in range(300):
                    if await request() != 200:
                        raise RuntimeError(f"{name} {path} did not answer 200")
            figures: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
            for _ in range(rounds):
                for case, (request, app) in cases.items():
                    figures[case].append(await cpu_us_per_request(request, requests, app))
    names = list(apps)
    print("| request | " + " | ".join(f"tracing {name}" for name in names) + " |")
    print("|---|" + "---:|" * len(names))
    for path in PATHS:
        off = statistics.median(figures["off", path])
        cells = [f"{off:.1f} µs"]
        for name in names[1:]:
            value = statistics.median(figures[name, path])
            cells.append(f"{value:.1f} µs ({value / off:.2f}x)")
        print(f"| `GET {path}` | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    url = database_url(args.backend, Path(tempfile.mkdtemp(prefix="catalog-otel-")))
    uvloop.run(measure(url, args.requests, args.rounds))


if __name__ == "__main__":
    main()
