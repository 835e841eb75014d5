"""The operators' live page and its figures: who may see them, and what they count."""

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.users.models import Role, User
from catalog.users.security import create_access_token
from catalog.web.operator import OPERATOR_AUDIENCE
from tests.conftest import Backend
from tests.helpers import bearer, create_user, serving
from tests.web.test_account import _sign_up

_TOKEN = re.compile(r'data-token="([^"]*)"')


@pytest.fixture
def settings(backend: Backend) -> Settings:
    # Closed, as in production (the tests' default opens the operator endpoints).
    return backend.settings(metrics_public=False)


async def _make_admin(engine: AsyncEngine, email: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.email == email).values(role=Role.ADMIN))


async def test_a_guest_is_sent_to_sign_in_and_a_customer_is_refused(
    browser: httpx.AsyncClient,
) -> None:
    guest = await browser.get("/operator")
    assert guest.status_code == 303
    assert guest.headers["location"] == "/signin?next=%2Foperator"
    await _sign_up(browser)
    customer = await browser.get("/operator")
    assert customer.status_code == 403
    assert "This page is for operators" in customer.text


async def test_an_admin_sees_the_page_and_its_token_reads_the_figures(
    browser: httpx.AsyncClient, app: FastAPI
) -> None:
    await _sign_up(browser, "ops@example.com")
    await _make_admin(app.state.engine, "ops@example.com")
    page = await browser.get("/operator")
    assert page.status_code == 200
    assert "/static/operator.js?v=" in page.text
    token = _TOKEN.search(page.text)
    assert token is not None
    assert token[1]

    # As the page's script asks (fetch sends Accept: */*): a problem, not a page.
    refused = await browser.get("/operator/figures", headers={"Accept": "*/*"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    figures = await browser.get(
        "/operator/figures", headers={"Authorization": f"Bearer {token[1]}"}
    )
    assert figures.status_code == 200
    assert figures.headers["Cache-Control"] == "no-store"
    body = figures.json()
    assert body["pool_size"] >= 1
    assert {"checked_out", "waiting", "overflow", "timeouts", "unavailable", "requests"} <= set(
        body
    )


async def test_no_other_token_reads_the_figures(
    browser: httpx.AsyncClient, app: FastAPI, admin_id: int
) -> None:
    api_token = bearer(admin_id, app.state.settings)
    assert (await browser.get("/operator/figures", headers=api_token)).status_code == 401
    await _sign_up(browser)
    session = browser.cookies["catalog_session"]
    pages_token = {"Authorization": f"Bearer {session}"}
    assert (await browser.get("/operator/figures", headers=pages_token)).status_code == 401


async def test_the_figures_count_503s_and_leave_their_own_requests_out(
    backend: Backend,
) -> None:
    settings = backend.settings(pool_size=1, max_overflow=0, pool_timeout=0.2, metrics_public=True)
    async with serving(settings) as (app, client):
        before = (await client.get("/operator/figures")).json()
        for _ in range(3):
            await client.get("/operator/figures")
        engine: AsyncEngine = app.state.engine
        async with engine.connect() as holder:  # the pool's only connection, held
            await holder.execute(text("SELECT 1"))
            refused = [await client.get("/products/1") for _ in range(2)]
            assert [response.status_code for response in refused] == [503, 503]
            during = (await client.get("/operator/figures")).json()
            assert during["checked_out"] >= 1

    assert during["unavailable"] - before["unavailable"] == 2
    assert during["errors"] - before["errors"] == 2  # 5xx
    assert during["timeouts"] - before["timeouts"] == 2
    assert during["requests"] - before["requests"] == 2  # the polls are not counted


async def test_the_figures_count_4xx_apart_from_5xx(backend: Backend) -> None:
    async with serving(backend.settings(metrics_public=True)) as (_app, client):
        before = (await client.get("/operator/figures")).json()
        assert (await client.get("/products/999999")).status_code == 404
        assert (await client.get("/products/abc")).status_code == 422
        after = (await client.get("/operator/figures")).json()

    assert after["client_errors"] - before["client_errors"] == 2
    assert after["errors"] - before["errors"] == 0


async def test_the_page_keeps_what_is_now_apart_from_running_totals(
    browser: httpx.AsyncClient, app: FastAPI, admin_id: int
) -> None:
    await _sign_up(browser)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(User).where(User.email == "shopper@example.com").values(role=Role.ADMIN)
        )
    page = (await browser.get("/operator")).text

    now, totals = page.split("<h2>Now</h2>")[1].split("<h2>Totals since the service started</h2>")
    assert re.findall(r"<dt>([^<]+)</dt>", now) == [
        "Pool size",
        "Checked out",
        "Overflow",
        "Waiting",
    ]
    assert re.findall(r"<dt>([^<]+)</dt>", totals) == [
        "Requests", "4xx answers", "5xx answers", "of which 503", "Pool timeouts",
        "Connections opened",
    ]  # fmt: skip
    for chart in ("4xx answers per second", "5xx answers per second"):
        assert chart in page
    assert page.count('<p class="x-axis" aria-hidden="true"><span>5 min ago</span>') == 10


async def test_the_server_keeps_the_last_minutes_for_a_page_opened_later(
    backend: Backend,
) -> None:
    settings = backend.settings(pool_size=1, max_overflow=0, pool_timeout=0.2, metrics_public=True)
    async with serving(settings) as (app, client):
        history = app.state.figure_history
        history.sample()  # before the incident (the lifespan's task also takes one a second)
        async with app.state.engine.connect() as holder:  # the pool's only connection
            await holder.execute(text("SELECT 1"))
            refused = [await client.get("/products/1") for _ in range(3)]
            assert [response.status_code for response in refused] == [503, 503, 503]
        history.sample()  # after it
        # A page opened now starts its charts from what the server kept.
        kept = await client.get("/operator/history")

    assert kept.status_code == 200
    assert kept.headers["Cache-Control"] == "no-store"
    samples = kept.json()
    assert samples == sorted(samples, key=lambda sample: sample["time"])
    assert samples[-1]["unavailable"] - samples[0]["unavailable"] >= 3
    assert len(samples) <= 300


async def test_the_history_needs_the_operator_pages_token(backend: Backend) -> None:
    async with serving(backend.settings(metrics_public=False)) as (app, client):
        client.headers.pop("Authorization")
        refused = await client.get("/operator/history", headers={"Accept": "*/*"})
        operator = await create_user(
            app.state.engine, f"op-{uuid.uuid4().hex}@example.com", admin=True
        )
        token, _ = create_access_token(operator, app.state.settings, audience=OPERATOR_AUDIENCE)
        headers = {"Authorization": f"Bearer {token}"}
        kept = await client.get("/operator/history", headers=headers)
        # The token ends with its account's sessions, and with its admin role.
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(User).where(User.id == operator).values(role=Role.CUSTOMER)
            )
        demoted = await client.get("/operator/history", headers=headers)
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(User)
                .where(User.id == operator)
                .values(role=Role.ADMIN, session_generation=User.session_generation + 1)
            )
        signed_out = await client.get("/operator/history", headers=headers)

    assert refused.status_code == 401
    assert kept.status_code == 200
    assert demoted.status_code == 403
    assert signed_out.status_code == 401
