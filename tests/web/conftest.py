"""What the tests of the pages share: a browser's view of the service."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from catalog.users.models import Role, User

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


@pytest.fixture
async def staff(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in to the pages as an admin."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://catalog.test", headers=BROWSER
    ) as browser:
        from tests.web.test_account import _form, _sign_up  # its forms, filled in

        await _sign_up(browser, "staff@example.com")
        # Made staff after signing up: the role is read from the database on each page.
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(User).where(User.email == "staff@example.com").values(role=Role.ADMIN)
            )
        # Signed in again, as staff would be: the session then shows the Staff link.
        browser.cookies.delete("catalog_session")
        signed_in = await _form(
            browser, "/signin", "/signin", email="staff@example.com", password="dinosaurs rule"
        )
        assert signed_in.status_code == 303, signed_in.text
        yield browser
