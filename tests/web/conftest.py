"""What the tests of the pages share: a browser's view of the service."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

# What a browser sends when it navigates to a page.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser's view of the service: cookies kept, redirects not followed (the tests
    look at each), no Authorization header."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://catalog.test", headers=BROWSER
    ) as http:
        yield http
