"""Where a request's time goes: pyinstrument profiles of catalog's hot routes.

    python bench/profile_request.py [--requests 3000] [--url postgresql+asyncpg://...]

Runs the app in-process (httpx's ASGI transport, so no sockets between client and app)
on an already seeded database (bench/suite.py seeds one), and profiles --requests
sequential requests per route after a warm-up. Writes, per route, into docs/profiles/:
`<name>.txt`, the call tree with library frames folded. (pyinstrument's speedscope
output, a timeline, came out empty for routes that read: each request's frames fell
under its 1% threshold, and with the threshold off the file is megabytes.) The client's
own frames are in the profile too (httpx), under `AsyncClient.get`: read the server's
share below `FastAPI.__call__`. SQLAlchemy's work inside its greenlet shows as a second
tree beside the first (`Reader._run`): pyinstrument sees a greenlet as its own stack.
"""

import argparse
import asyncio
import time
from pathlib import Path

import httpx
from common import SERVER_URLS
from pyinstrument import Profiler

from catalog.config import Settings
from catalog.main import create_app

OUT = Path(__file__).resolve().parent.parent / "docs" / "profiles"
ROUTES = {
    "get_product": "/products/5",
    "list_page": "/products?limit=20",
    "health_live": "/health/live",
}


async def profile(url: str, requests: int) -> None:
    app = create_app(Settings(database_url=url))
    OUT.mkdir(parents=True, exist_ok=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            for name, path in ROUTES.items():
                for _ in range(200):
                    (await client.get(path)).raise_for_status()
                started = time.perf_counter()
                for _ in range(requests):
                    await client.get(path)
                took = (time.perf_counter() - started) / requests * 1000
                profiler = Profiler(interval=0.0002, async_mode="disabled")
                profiler.start()
                for _ in range(requests):
                    await client.get(path)
                profiler.stop()
                header = f"GET {path}: {took:.3f} ms per request in-process, unprofiled\n\n"
                text = profiler.output_text(unicode=False, color=False)
                (OUT / f"{name}.txt").write_text(header + text)
                print(header + text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--url", default=SERVER_URLS["postgresql"])
    args = parser.parse_args()
    asyncio.run(profile(args.url, args.requests))


if __name__ == "__main__":
    main()
