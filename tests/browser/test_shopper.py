"""A shopper in Chromium, on a real `catalog serve` with the demo data of `make run`.

Runs on SQLite. TODO(issue 18): the same flows on PostgreSQL, by adding "postgresql" to
the `shop` fixture's backends (tests/browser/conftest.py) and pointing the server at the
PostgreSQL test database (migrated and seeded as here).
"""

import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tests.browser import async_api
from tests.browser.conftest import DESKTOP, PHONE, Seen

if TYPE_CHECKING:
    from playwright.async_api import Page

# The browser lives on the session's event loop (see tests/browser/__init__.py).
pytestmark = pytest.mark.asyncio(loop_scope="session")
expect = async_api().expect

# The pages a shopper can land on: with results, none, one product, an error.
HOME = "/"
RESULTS = "/search?q=dinosaurs"
NO_RESULTS = "/search?q=dinosaurs&category=garden&created_after=2021-01-01"
# A filter that is not valid: the field marked, its mistake beside it.
BAD_FILTER = "/search?q=dinosaurs&price_min=abc"
PRODUCT = "/product/1"
ERROR = "/product/999999"
# A guest's account and cart pages.
SIGN_IN, SIGN_UP, CART = "/signin", "/signup", "/cart"
# Open to anyone on the tests' server (CATALOG_METRICS_PUBLIC=true), its script included.
OPERATOR = "/operator"
PAGES = [HOME, RESULTS, NO_RESULTS, BAD_FILTER, PRODUCT, ERROR, SIGN_IN, SIGN_UP, CART, OPERATOR]
# An error page's own status, which Chromium logs as a failed load.
_FAILED_LOADS = {
    ERROR: ["Failed to load resource: the server responded with a status of 404 (Not Found)"],
    BAD_FILTER: [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ],
}
_CARDS = ".cards .card"


async def _product_links(page: "Page") -> list[str]:
    links = page.locator(f"{_CARDS} h3 a")
    return [str(await link.get_attribute("href")) for link in await links.all()]


async def test_a_newcomer_finds_the_five_dinosaur_books_added_after_2020(page: "Page") -> None:
    await page.goto(HOME)
    await page.get_by_label("Search the catalog").fill("dinosaurs")
    await page.get_by_role("button", name="Search").click()
    await expect(page).to_have_url(re.compile(r"/search\?q=dinosaurs$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Results for “dinosaurs”")

    await page.get_by_label("Category").select_option("books")
    await page.get_by_label("Added after").fill("2021-01-01")
    await page.get_by_role("button", name="Search").click()

    await expect(page).to_have_url(re.compile(r"category=books.*created_after=2021-01-01"))
    cards = page.locator(_CARDS)
    await expect(cards).to_have_count(5)
    await expect(cards.locator(".category")).to_have_text(["books"] * 5)
    for card in await cards.all():
        await expect(card).to_contain_text(re.compile("dinosaur", re.IGNORECASE))
    await expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    # The form keeps what was asked, and each filter can be taken off on its own.
    await expect(page.get_by_label("Category")).to_have_value("books")
    await expect(page.get_by_label("Added after")).to_have_value("2021-01-01")
    await expect(page.get_by_role("link", name="Category: books")).to_be_visible()


async def test_next_page_shows_other_products_of_the_same_search(page: "Page") -> None:
    await page.goto(HOME)
    categories = page.get_by_role("region", name="Categories")
    await categories.get_by_role("link", name="books").click()
    await expect(page).to_have_url(re.compile(r"/search\?category=books$"))
    await expect(page.locator(_CARDS)).to_have_count(20)
    first = await _product_links(page)

    await page.get_by_role("link", name="Next page").click()

    await expect(page).to_have_url(re.compile(r"category=books&cursor="))
    await expect(page.locator(_CARDS).first).to_be_visible()
    second = await _product_links(page)
    assert second
    assert not set(first) & set(second)
    await expect(page.locator(f"{_CARDS} .category")).to_have_text(["books"] * len(second))
    await expect(page.get_by_text("Page 2", exact=True)).to_be_visible()

    await page.get_by_role("link", name="Previous page").click()

    await expect(page.get_by_text("Page 1", exact=True)).to_be_visible()
    assert await _product_links(page) == first
    await expect(page.get_by_role("link", name="Previous page")).to_have_count(0)


async def test_a_product_opened_from_the_results_shows_its_price_and_stock(page: "Page") -> None:
    await page.goto(RESULTS)
    link = page.locator(f"{_CARDS} h3 a").first
    name = await link.inner_text()
    href = str(await link.get_attribute("href"))

    await link.click()

    await expect(page).to_have_url(re.compile(re.escape(href) + "$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    # What the JSON API says of the same product.
    api = await page.request.get(href.replace("/product/", "/products/"))
    product = await api.json()
    # In the shop's currency and locale (by default USD, en_US): "$1,234.50".
    await expect(page.locator(".product .price")).to_have_text(f"${Decimal(product['price']):,.2f}")
    stock = f"In stock ({product['stock']})" if product["stock"] > 0 else "Out of stock"
    await expect(page.locator(".product .stock")).to_have_text(stock)


async def test_a_search_that_finds_nothing_says_so_and_takes_a_filter_off(page: "Page") -> None:
    await page.goto(NO_RESULTS)
    await expect(page.get_by_role("heading", name="No products match")).to_be_visible()
    await expect(page.locator(_CARDS)).to_have_count(0)

    await page.get_by_role("link", name="Remove category “garden”").click()

    await expect(page).to_have_url(re.compile(r"/search\?q=dinosaurs&created_after=2021-01-01$"))
    await expect(page.locator(_CARDS).first).to_be_visible()


async def _has_visible_focus(page: "Page") -> bool:
    return bool(
        await page.evaluate(
            """() => {
                const style = getComputedStyle(document.activeElement);
                const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
                return outline || style.boxShadow !== "none";
            }"""
        )
    )


async def test_tab_from_the_top_shows_the_skip_link_then_reaches_the_search_box(
    page: "Page",
) -> None:
    await page.goto(HOME)

    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    assert await _has_visible_focus(page)

    # Following the skip link, the next Tab lands on the page's first control.
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Search the catalog")).to_be_focused()
    assert await _has_visible_focus(page)


async def test_on_a_phone_the_filters_fold_away_and_the_sort_is_at_the_top(
    page: "Page",
) -> None:
    await page.set_viewport_size(PHONE)
    await page.goto("/search?q=dinosaurs&category=books")
    lowest = page.get_by_label("Lowest price")
    await expect(lowest).to_be_hidden()
    await expect(page.get_by_text("Search and filters (2 in use)")).to_be_visible()
    # The sort, above the products, applies with its own button.
    await page.get_by_label("Sort by").select_option("price")
    await page.get_by_role("button", name="Sort").click()
    await expect(page).to_have_url(re.compile(r"/search\?q=dinosaurs&category=books&sort=price$"))
    shown = await page.locator(f"{_CARDS} .price").all_inner_texts()
    assert all(text.startswith("$") for text in shown)  # the default currency, en_US
    prices = [float(text.lstrip("$").replace(",", "")) for text in shown]
    assert prices == sorted(prices)

    await page.get_by_text("Search and filters").click()
    await expect(lowest).to_be_visible()
    await lowest.fill("100")
    await page.get_by_role("button", name="Search", exact=True).click()
    # No empty field of the form in the URL, the sort kept.
    await expect(page).to_have_url(
        re.compile(r"/search\?q=dinosaurs&category=books&price_min=100&sort=price$")
    )

    await page.set_viewport_size(DESKTOP)
    await expect(lowest).to_be_visible()  # beside the results, nothing to open


async def test_on_the_results_a_second_skip_link_reaches_the_first_product(
    page: "Page",
) -> None:
    await page.goto(RESULTS)

    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the results")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    # Past the filters' dozen controls: the first product's link.
    first = page.locator(f"{_CARDS} h3 a").first
    await expect(first).to_be_focused()
    assert await _has_visible_focus(page)


@pytest.mark.parametrize("path", PAGES)
async def test_no_serious_or_critical_accessibility_violation(
    axe: Callable[[str], Awaitable[list[str]]], path: str
) -> None:
    violations = await axe(path)
    assert violations == [], "\n".join(violations)


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_loads_nothing_from_elsewhere_and_satisfies_its_csp(
    page: "Page", seen: Seen, path: str
) -> None:
    await page.goto(path)  # waits for the load event: the stylesheet and any other resource
    # The stylesheet came from the service itself, and applied.
    background = await page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 246, 250)"
    # The icon too: without one, every page cost a 404 for /favicon.ico.
    icon = await page.locator("link[rel=icon]").get_attribute("href")
    assert icon is not None
    assert (await page.request.get(icon)).ok
    assert seen.foreign == []
    assert seen.csp_violations == []
    # An error page's own status is logged as a failed load; nothing else may be.
    assert seen.errors == _FAILED_LOADS.get(path, []), seen.errors


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("path", PAGES)
async def test_a_page_fits_the_width_of_the_screen(
    page: "Page", path: str, viewport: dict[str, int]
) -> None:
    await page.set_viewport_size(viewport)
    await page.goto(path)
    width, screen = await page.evaluate(
        "() => [document.scrollingElement.scrollWidth, window.innerWidth]"
    )
    assert width <= screen, f"{path} is {width}px wide on a {screen}px screen"


async def test_the_api_docs_render_from_the_service_alone_under_their_csp(
    page: "Page", seen: Seen
) -> None:
    # Swagger UI, from the service's own copy: the operations listed, grouped by tag.
    await page.goto("/docs")
    await expect(page.locator(".opblock-tag", has_text="products").first).to_be_visible()
    await expect(page.get_by_text("/products/{product_id}").first).to_be_visible()
    assert (seen.foreign, seen.csp_violations, seen.errors) == ([], [], [])
    # ReDoc, the same way. Its sidebar always shows Redocly's logo from Redocly's CDN,
    # which the page's policy refuses (the image hides itself when it cannot load):
    # the only request to another origin, and it does not leave the browser.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    async with page.expect_console_message(lambda message: logo in message.text):
        await page.goto("/redoc")
    await expect(page.get_by_role("heading", name="catalog").first).to_be_visible()
    await expect(page.get_by_role("heading", name="List Products")).to_be_visible()
    await expect(page.locator('img[alt="redocly logo"]')).to_have_count(0)
    assert seen.foreign == [logo]
    assert len(seen.csp_violations) == 1
    assert logo in seen.csp_violations[0]
    assert seen.errors == []
    seen.foreign.clear()  # checked: the page fixture's own check is for the other pages
    seen.csp_violations.clear()
