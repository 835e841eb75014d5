"""A checkout the database cannot answer: the page says the outcome is not known, and
sending the order again places it once."""

import re

import httpx
import pytest

from catalog.config import Settings
from tests.conftest import Backend
from tests.helpers import only_on, products_locked
from tests.web.test_account import _TOKEN, _field, _form, _product, _sign_up, _stock

_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_ITEMS = re.compile(r'name="items" value="([^"]*)"')


@pytest.fixture
def settings(backend: Backend) -> Settings:
    # A write waits for another writer's lock this long: the outage below, quickly.
    return backend.settings(sqlite_busy_timeout=0.2)


@only_on("sqlite")
async def test_a_checkout_the_database_cannot_answer_can_be_sent_again_and_orders_once(
    backend: Backend, browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    atlas = await _product(client, "BK-1", name="Dinosaur atlas", stock=5)
    await _sign_up(browser)
    await _form(browser, f"/product/{atlas}", "/cart", product_id=str(atlas), add="true")
    checkout = await browser.get("/checkout")
    form = {
        "csrf_token": _field(_TOKEN, checkout.text),
        "idempotency_key": _field(_KEY, checkout.text),
        "items": _field(_ITEMS, checkout.text),
    }

    async with products_locked(backend):  # another writer holds the database
        unknown = await browser.post("/checkout", data=form)

    assert unknown.status_code == 503
    assert "we do not know yet whether your order went through" in unknown.text
    assert _field(_KEY, unknown.text) == form["idempotency_key"]
    assert await _stock(client, atlas) == 5
    again = {
        "csrf_token": _field(_TOKEN, unknown.text),
        "idempotency_key": _field(_KEY, unknown.text),
        "items": _field(_ITEMS, unknown.text),
    }
    placed = await browser.post("/checkout", data=again)
    twice = await browser.post("/checkout", data=again)

    assert placed.status_code == twice.status_code == 303
    assert placed.headers["location"] == twice.headers["location"]
    assert await _stock(client, atlas) == 4
    orders = await browser.get("/account/orders")
    assert orders.text.count("/account/orders/") == 1
