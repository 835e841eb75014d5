"""Take the README's screenshots of the pages (docs/img/pages-*.png), desktop and phone.

    make screenshots        # or: .venv/bin/python docs/screenshots.py [--products N]

Serves `catalog` on a throwaway SQLite database seeded with --products demo products
(1,000,000 by default, the seeds' scale; `make run` seeds 1,000), with a pool of two,
then walks the pages in Debian's Chromium as a shopper, a staff member and an operator
would, and saves what it sees. The operator page is shot after a burst of
503s (another process holds the database's write lock while requests queue for the
pool) and the recovery that follows.
"""

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright

OUT = Path(__file__).parent / "img"
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
STAFF = ("staff@example.com", "staff password")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _catalog(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "catalog", *args],
        env=env,
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


async def _shoot(page: Page, name: str, viewport: str) -> None:
    await page.screenshot(path=OUT / f"pages-{name}-{viewport}.png")


async def _sign_in(page: Page) -> None:
    await page.goto("/signin")
    await page.get_by_label("Email").fill(STAFF[0])
    await page.get_by_label("Password").fill(STAFF[1])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/")


async def _burst(base_url: str, database: Path) -> None:
    """A burst of 503s: a write waits for a lock that another process holds, with the
    pool's connections, while reads queue for the pool and time out."""
    lock = sqlite3.connect(database, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        writers = [
            asyncio.create_task(
                client.post("/users", json={"email": f"w{n}@example.com", "password": "x" * 12})
            )
            for n in range(2)
        ]
        for _ in range(6):
            await asyncio.gather(*(client.get("/products/1") for _ in range(5)))
            await asyncio.sleep(0.5)
        lock.execute("ROLLBACK")
        lock.close()
        await asyncio.gather(*writers)
        for _ in range(20):
            await asyncio.gather(*(client.get("/search?q=dinosaurs") for _ in range(4)))
            await asyncio.sleep(0.5)


async def shoot(base_url: str, database: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        operator = await (await browser.new_context(base_url=base_url)).new_page()
        await operator.set_viewport_size(VIEWPORTS["desktop"])
        await operator.goto("/operator")
        for viewport, size in VIEWPORTS.items():
            context = await browser.new_context(base_url=base_url, viewport=size)
            page = await context.new_page()
            await page.goto("/")
            await _shoot(page, "home", viewport)
            await page.goto("/search?q=dinosaurs&category=books&created_after=2021-01-01")
            await _shoot(page, "results", viewport)
            await page.locator(".cards .card h3 a").first.click()
            await _shoot(page, "product", viewport)
            await _sign_in(page)
            for product in (451, 576):
                await page.goto(f"/product/{product}")
                await page.get_by_role("button", name="Add to cart").click()
            await page.get_by_role("link", name="Go to checkout").click()
            await _shoot(page, "checkout", viewport)
            await page.get_by_role("button", name="Place order").click()
            await _shoot(page, "order", viewport)
            await page.goto("/staff/products?q=dinosaurs")
            await _shoot(page, "staff", viewport)
            # An edit that meets a change saved meanwhile in another tab: the price
            # changed in both, the name in this one, the stock in the other.
            await page.goto("/staff/products/451")
            other = await context.new_page()
            await other.goto("/staff/products/451")
            await other.get_by_label("Price").fill(f"99.{len(viewport)}0")
            await other.get_by_label("Stock").fill(f"1{len(viewport)}")
            await other.get_by_role("button", name="Save changes").click()
            await page.get_by_label("Name").fill(f"Modern chair about oceans, {viewport}")
            await page.get_by_label("Price").fill(f"98.{len(viewport)}0")
            await page.get_by_role("button", name="Save changes").click()
            await _shoot(page, "conflict", viewport)
            await page.goto("/staff/import")
            await page.get_by_label("File (.csv").set_input_files(
                {
                    "name": "spring.csv",
                    "mimeType": "text/csv",
                    "buffer": b"sku,name,description,price,stock,category\n"
                    b"SPR-1,Dinosaur kite,Flies.,18.00,30,toys\n"
                    b"SPR-2,Dinosaur umbrella,,a lot,12,outdoor\n"
                    b"SPR-3,Dinosaur boots,Waterproof.,35.00,8,clothes\n",
                }
            )
            await page.get_by_role("button", name="Import").click()
            await _shoot(page, "import", viewport)
            await context.close()
        await _burst(base_url, database)
        await operator.get_by_text("Recovered").wait_for(timeout=30_000)
        await operator.screenshot(path=OUT / "pages-operator-desktop.png", full_page=True)
        await browser.close()


def main() -> None:
    products = sys.argv[sys.argv.index("--products") + 1] if "--products" in sys.argv else None
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "catalog.db"
        port = _free_port()
        env = {
            **os.environ,
            "CATALOG_DATABASE_URL": f"sqlite+inline:///{database}",
            "CATALOG_JWT_SECRET_FILE": str(Path(folder) / "key"),
            "CATALOG_POOL_SIZE": "2",
            "CATALOG_MAX_OVERFLOW": "0",
            "CATALOG_POOL_TIMEOUT": "0.3",
            "CATALOG_SQLITE_BUSY_TIMEOUT": "20",
            "CATALOG_METRICS_PUBLIC": "true",
            "CATALOG_ACCESS_LOG": "false",
        }
        _catalog(env, "db", "upgrade")
        _catalog(env, "seed", "--products", products or "1000000")
        _catalog(env, "user", "create", STAFF[0], "--admin", stdin=f"{STAFF[1]}\n")
        server = subprocess.Popen(
            [sys.executable, "-m", "catalog", "serve", "--port", str(port)], env=env
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.get(f"{base_url}/health/live").raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            asyncio.run(shoot(base_url, database))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
