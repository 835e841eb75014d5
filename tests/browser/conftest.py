"""One Chromium per test session, one real `catalog serve` with the demo data, a fresh
page (its own browser context) per test.

Every page a test opens is watched: a request to another origin or a Content-Security-
Policy violation in its console fails the test, whatever the test itself checks.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tests.browser import AXE, missing
from tests.servers import Server, catalog_server
from tests.throwaway import ThrowawayPostgres

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The impacts of the axe-core violations that fail a test (issue 18: serious, critical).
_FAILING_IMPACTS = ("serious", "critical")
STAFF_EMAIL, STAFF_PASSWORD = "staff@example.com", "staff password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test in this folder is a browser test (`pytest -m "not browser"` leaves them out).
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator["Browser"]:
    """Debian's Chromium, headless, launched once for the session (no browser download)."""
    executable = shutil.which("chromium")
    if executable is None:
        missing("no `chromium` on PATH (Debian: apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright is not installed (the dev extra: make install-dev)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # Chromium's sandbox refuses to run as root, which CI is.
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        try:
            yield browser
        finally:
            await browser.close()


def _catalog(*args: str, env: dict[str, str], stdin: str | None = None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "catalog", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextmanager
def _database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database of its own: a SQLite file, or a throwaway PostgreSQL
    server (never the shared one, which the other tests clean between tests)."""
    if backend == "sqlite":
        # catalog's own driver by default; CI runs the SQLite tests again with aiosqlite.
        driver = os.environ.get("CATALOG_TEST_SQLITE_DRIVER", "inline")
        yield f"sqlite+{driver}:///{folder / 'catalog.db'}"
        return
    server = ThrowawayPostgres(folder)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
        pytest.param("postgresql", marks=pytest.mark.postgresql, id="postgresql"),
    ],
)
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real `catalog serve` on a database of its own, migrated and seeded as `make run`
    does it: the 1,000 demo products, five of them books about dinosaurs after 2020."""
    folder = tmp_path_factory.mktemp("shop")
    with _database(request.param, folder) as url:
        env = {"CATALOG_DATABASE_URL": url}
        _catalog("db", "upgrade", env=env)
        _catalog("seed", "--products", "1000", env=env)
        # The shop's staff: an admin account, made as the README says.
        _catalog("user", "create", STAFF_EMAIL, "--admin", env=env, stdin=f"{STAFF_PASSWORD}\n")
        with catalog_server(env, folder / "serve.log") as server:
            yield server
        assert "Traceback" not in server.output(), server.output()


@dataclass
class Seen:
    """What the pages of one test asked for and said, beyond what the test looks at."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def request(self, request: "Request") -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def console(self, message: "ConsoleMessage") -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)
        elif message.type == "error":
            # "Failed to load resource: ... 404" of an error page shown on purpose, too.
            self.errors.append(message.text)

    def watch(self, context: "BrowserContext") -> None:
        context.on("request", self.request)
        context.on("console", self.console)
        context.on("weberror", lambda error: self.errors.append(str(error.error)))


async def _context(
    chromium: "Browser", shop: Server, seen: Seen, **options: Any
) -> "BrowserContext":
    context = await chromium.new_context(base_url=shop.base_url, viewport=DESKTOP, **options)
    context.set_default_timeout(10_000)
    seen.watch(context)
    return context


@pytest.fixture
def seen(shop: Server) -> Seen:
    return Seen(shop.base_url)


@pytest_asyncio.fixture(loop_scope="session")
async def page(chromium: "Browser", shop: Server, seen: Seen) -> AsyncIterator["Page"]:
    """A new page at desktop width on the shop, under the pages' own CSP."""
    context = await _context(chromium, shop, seen)
    try:
        yield await context.new_page()
    finally:
        await context.close()
    assert seen.foreign == [], f"requests to another origin: {seen.foreign}"
    assert seen.csp_violations == [], "\n".join(seen.csp_violations)


async def audit(page: "Page") -> list[str]:
    """axe-core's serious and critical violations on `page` as it is now, one line each:
    rule id, what it asks, the elements at fault.

    axe is evaluated through the DevTools protocol, which the page's CSP does not govern
    (a <script> element carrying it, the CSP refuses, rightly): the page is checked under
    its own policy."""
    if not AXE.is_file():
        missing(f"no {AXE} (npm ci --prefix tests/browser)")
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(f"{AXE.read_text()}\n;undefined")
    results = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']}; "
        f"at {[node['target'] for node in violation['nodes']]}"
        for violation in results["violations"]
        if violation["impact"] in _FAILING_IMPACTS
    ]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def staff_state(chromium: "Browser", shop: Server) -> dict[str, Any]:
    """The cookies of a browser signed in as the shop's staff, once per shop: signing in
    for every test would meet the sign-in rate limit (10 a minute per account from one
    address), as it should."""
    context = await chromium.new_context(base_url=shop.base_url)
    try:
        page = await context.new_page()
        await page.goto("/signin")
        await page.get_by_label("Email").fill(STAFF_EMAIL)
        await page.get_by_label("Password").fill(STAFF_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/")
        return dict(await context.storage_state())
    finally:
        await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def staff_page(
    chromium: "Browser", shop: Server, seen: Seen, staff_state: dict[str, Any]
) -> AsyncIterator["Page"]:
    """A new page at desktop width, signed in as the shop's staff."""
    context = await _context(chromium, shop, seen, storage_state=staff_state)
    try:
        yield await context.new_page()
    finally:
        await context.close()
    assert seen.foreign == [], f"requests to another origin: {seen.foreign}"
    assert seen.csp_violations == [], "\n".join(seen.csp_violations)


@pytest_asyncio.fixture(loop_scope="session")
async def axe(
    chromium: "Browser", shop: Server, seen: Seen, staff_state: dict[str, Any]
) -> AsyncIterator[Callable[..., Awaitable[list[str]]]]:
    """`axe(path)` opens the page at `path` and returns axe-core's serious and critical
    violations there, one line each: rule id, what it asks, the elements at fault.
    `axe(path, staff=True)` opens it signed in as the shop's staff."""
    contexts: dict[bool, BrowserContext] = {}

    async def check(path: str, *, staff: bool = False) -> list[str]:
        if staff not in contexts:
            options = {"storage_state": staff_state} if staff else {}
            contexts[staff] = await _context(chromium, shop, seen, **options)
        context = contexts[staff]
        page = context.pages[0] if context.pages else await context.new_page()
        await page.goto(path)
        # Checked where it was asked for: a redirect (to sign in) would check another page.
        assert urlsplit(page.url).path == urlsplit(path).path, page.url
        return await audit(page)

    try:
        yield check
    finally:
        for context in contexts.values():
            await context.close()
    assert seen.foreign == [], f"requests to another origin: {seen.foreign}"
    assert seen.csp_violations == [], "\n".join(seen.csp_violations)
