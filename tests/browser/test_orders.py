"""A newcomer in Chromium signs up, orders, double-clicks "Place order", cancels: on a
real `catalog serve` with the demo data (tests/browser/conftest.py)."""

import re
import uuid
from typing import TYPE_CHECKING

import pytest

from tests.browser import async_api
from tests.browser.conftest import audit

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.asyncio(loop_scope="session")
expect = async_api().expect

_STOCK = re.compile(r"In stock \((\d+)\)")


async def _stock_shown(page: "Page", product: str) -> int:
    await page.goto(product)
    found = _STOCK.fullmatch(await page.locator(".product .stock").inner_text())
    assert found is not None
    return int(found[1])


async def _sign_up(page: "Page") -> str:
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    await page.get_by_role("link", name="Sign up").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("dinosaurs rule")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("link", name="My orders")).to_be_visible()
    return email


async def test_a_newcomer_orders_two_books_double_clicks_and_cancels(page: "Page") -> None:
    await page.goto("/search?q=dinosaurs&category=books&created_after=2021-01-01&in_stock=true")
    books = [
        str(await link.get_attribute("href"))
        for link in await page.locator(".cards .card h3 a").all()
    ][:2]
    assert len(books) == 2
    before = [await _stock_shown(page, book) for book in books]

    await _sign_up(page)
    for book in books:
        await page.goto(book)
        await page.get_by_role("button", name="Add to cart").click()
        await expect(page.get_by_role("status")).to_have_text("Added to your cart.")
    await expect(page.locator(".lines tbody tr")).to_have_count(2)
    assert await audit(page) == []  # the cart with its lines

    await page.get_by_role("link", name="Go to checkout").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    assert await audit(page) == []
    await page.get_by_role("button", name="Place order").dblclick()

    await expect(page.get_by_role("status")).to_have_text("Thank you: your order is placed.")
    order_url = page.url.split("?")[0]
    assert await audit(page) == []  # the order, as placed
    await page.get_by_role("link", name="All my orders").click()
    # One order, whatever the double click sent.
    await expect(page.locator(".lines tbody tr")).to_have_count(1)
    assert await audit(page) == []  # my orders
    assert [await _stock_shown(page, book) for book in books] == [n - 1 for n in before]

    await page.goto(order_url)
    await page.get_by_role("link", name="Cancel this order…").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Cancel order"))
    assert await audit(page) == []  # the question before cancelling
    await page.get_by_role("button", name="Cancel the order").click()
    await expect(page.get_by_role("status")).to_have_text(
        "The order is cancelled and its products are back in stock."
    )
    await expect(page.locator(".status")).to_have_text("cancelled")
    assert [await _stock_shown(page, book) for book in books] == before


async def test_a_guest_at_the_checkout_signs_in_and_comes_back(page: "Page") -> None:
    await page.goto("/search?q=dinosaurs&in_stock=true")
    await page.locator(".cards .card h3 a").first.click()
    await page.get_by_role("button", name="Add to cart").click()
    await page.get_by_role("link", name="Go to checkout").click()

    await expect(page).to_have_url(re.compile(r"/signin\?next=%2Fcheckout$"))
    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Email").fill(f"guest-{uuid.uuid4().hex[:8]}@example.com")
    await page.get_by_label("Password").fill("dinosaurs rule")
    await page.get_by_role("button", name="Create account").click()

    await expect(page).to_have_url(re.compile(r"/checkout$"))
    await expect(page.get_by_role("button", name="Place order")).to_be_visible()
