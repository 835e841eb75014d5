"""Tests in a real browser: Debian's Chromium driven by Playwright, with axe-core injected.

What they need, and where it comes from: `chromium` (apt, in .ci/run), the `playwright`
package (the `dev` extra; it never downloads a browser here: it launches the Debian one)
and axe-core (npm, pinned in package-lock.json beside this file, installed by
`npm ci --prefix tests/browser`, which `make test` runs when npm is there). Without one of
them the tests are skipped with the reason; with CI=true they fail instead.

The tests use Playwright's asyncio API on the session's event loop (a test module says
`pytestmark = pytest.mark.asyncio(loop_scope="session")`): its sync API keeps an event
loop marked running in the main thread for as long as the browser lives, which breaks
every later `asyncio.run` of the suite (the CLI's commands, the fixtures' migrations).
"""

import importlib
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from tests.conftest import IN_CI

__all__ = ["AXE", "async_api", "missing"]

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"


def missing(what: str) -> NoReturn:
    """Skip the test for want of `what`; with CI=true, fail it."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(what)


def async_api() -> ModuleType:
    """Playwright's asyncio API, for a test module to take its `expect` from; without the
    package the module is skipped (failed with CI=true)."""
    try:
        return importlib.import_module("playwright.async_api")
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(
            "playwright is not installed (the dev extra: make install-dev)",
            allow_module_level=True,
        )
