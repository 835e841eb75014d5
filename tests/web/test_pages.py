"""The shoppers' pages: HTML over the same services as the API, usable without script."""

import re
import uuid
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.conftest import Backend
from tests.helpers import assert_problem, product_payload, serving
from tests.web.conftest import BROWSER

CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class Page(HTMLParser):
    """What the tests look for in a page: its links, controls, labels and headings."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []
        self.controls: list[dict[str, str]] = []
        self.labelled: set[str] = set()
        self.stylesheets: list[str] = []
        self.h1s = 0
        self.lang: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.lang = found.get("lang")
        elif tag == "a":
            self.links.append(found)
        elif tag == "label" and "for" in found:
            self.labelled.add(found["for"])
        elif tag in ("select", "textarea") or (
            tag == "input" and found.get("type") not in ("hidden", "submit", "button")
        ):
            self.controls.append(found)
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.stylesheets.append(found["href"])
        elif tag == "h1":
            self.h1s += 1

    def hrefs(self) -> list[str]:
        return [link["href"] for link in self.links]

    def next_page(self) -> str | None:
        return next((link["href"] for link in self.links if link.get("rel") == "next"), None)

    def previous_page(self) -> str | None:
        return next((link["href"] for link in self.links if link.get("rel") == "prev"), None)

    def products(self) -> list[str]:
        return [href for href in self.hrefs() if href.startswith("/product/")]


async def _add(client: httpx.AsyncClient, sku: str, **fields: Any) -> int:
    response = await client.post("/products", json=product_payload(sku, **fields))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture
async def shop(client: httpx.AsyncClient) -> dict[str, int]:
    """Four dinosaur books (one out of stock), a dinosaur toy and a garden tool."""
    return {
        "atlas": await _add(client, "BK-1", name="Dinosaur atlas", price="30.00"),
        "guide": await _add(client, "BK-2", name="Dinosaur field guide", price="20.00"),
        "tales": await _add(client, "BK-3", name="Dinosaur tales", price="10.00"),
        "gone": await _add(client, "BK-4", name="Dinosaur diary", price="15.00", stock=0),
        "toy": await _add(client, "TY-1", name="Dinosaur plush", category="toys", price="9.99"),
        "rake": await _add(
            client, "GD-1", name="Leaf rake", description="Wide.", category="garden"
        ),
    }


def _html(response: httpx.Response, status: int = 200) -> Page:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return Page(response.text)


async def test_home_in_a_browser_shows_the_search_box_categories_and_newest_products(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    response = await client.get("/", headers=BROWSER)
    page = _html(response)
    assert response.headers["Vary"] == "Accept, Cookie"
    assert {"id": "q", "name": "q", "type": "search", "maxlength": "200"}.items() <= (
        page.controls[0].items()
    )
    for category in ("books", "garden", "toys"):
        assert f"/search?category={category}" in page.hrefs()
    # Newest first: the rake was added last.
    assert page.products()[0] == f"/product/{shop['rake']}"
    assert set(page.products()) == {f"/product/{id_}" for id_ in shop.values()}


async def test_home_and_results_show_each_category_with_its_product_count(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    home = (await client.get("/", headers=BROWSER)).text
    assert re.search(r'category=books">books <span class="count">4</span>', home)
    assert re.search(r'category=toys">toys <span class="count">1</span>', home)

    # Counts move with the products, and a category whose last product left is gone.
    await client.delete(f"/products/{shop['rake']}")
    await client.patch(f"/products/{shop['toy']}", json={"category": "books"})
    results = (await client.get("/search", params={"category": "Books"}, headers=BROWSER)).text
    assert '<option value="books" selected>books (5)</option>' in results
    assert "garden" not in results
    assert len(Page(results).products()) == 5


async def test_a_worker_reads_the_categories_once_per_ttl(backend: Backend) -> None:
    # A category of this test's own: the backend's database is shared, not cleaned here.
    category = f"cached-{uuid.uuid4().hex[:8]}"
    async with serving(backend.settings(categories_ttl=3600)) as (app, client):
        await client.post("/products", json=product_payload(f"{category}-A", category=category))
        first = (await client.get("/", headers=BROWSER)).text
        await client.post("/products", json=product_payload(f"{category}-B", category=category))
        again = (await client.get("/", headers=BROWSER)).text
        app.state.category_cache.ttl = 0
        later = (await client.get("/", headers=BROWSER)).text

    count = re.compile(rf'category={category}">{category} <span class="count">(\d+)</span>')
    assert [count.findall(page) for page in (first, again, later)] == [["1"], ["1"], ["2"]]


async def test_a_worker_counts_a_search_once_per_ttl_for_all_its_pages(backend: Backend) -> None:
    word = f"counted{uuid.uuid4().hex[:8]}"
    async with serving(backend.settings(result_counts_ttl=3600)) as (app, client):
        for letter in "ABC":
            await client.post("/products", json=product_payload(f"{word}-{letter}", name=word))
        first = (await client.get(f"/search?q={word}&limit=2", headers=BROWSER)).text
        await client.post("/products", json=product_payload(f"{word}-D", name=word))
        # The same search sorted otherwise: the same filters, the count kept.
        again = (await client.get(f"/search?q={word}&sort=price&limit=2", headers=BROWSER)).text
        app.state.count_cache.ttl = 0
        later = (await client.get(f"/search?q={word}&limit=2", headers=BROWSER)).text

    assert [_count_line(page) for page in (first, again, later)] == [
        "3 products",
        "3 products",
        "4 products",
    ]


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
async def test_home_for_an_api_client_is_still_the_404_problem(
    client: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    client.headers.pop("Accept", None)
    body = assert_problem(await client.get("/", headers=headers), 404)
    assert body["type"] == "/problems/not-found"


async def test_a_search_with_filters_finds_what_the_api_finds_and_pages_on(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    query = "q=dinosaur&category=books&in_stock=true&price_max=25&sort=price&limit=1"
    shown = await client.get(f"/search?{query}", headers=BROWSER)
    first = _html(shown)
    assert first.products() == [f"/product/{shop['tales']}"]
    assert 'aria-current="page">Page 1</span>' in shown.text
    link = first.next_page()
    assert link is not None
    assert link.startswith("/search?")
    assert link.endswith("&page=2")
    shown = await client.get(link.replace("&amp;", "&"), headers=BROWSER)
    second = _html(shown)
    assert second.products() == [f"/product/{shop['guide']}"]
    assert second.next_page() is None
    assert 'aria-current="page">Page 2</span>' in shown.text
    assert first.previous_page() is None
    # Previous leads back to the first page: the same product, and no Previous there.
    back = second.previous_page()
    assert back is not None
    shown_again = await client.get(back.replace("&amp;", "&"), headers=BROWSER)
    again = _html(shown_again)
    assert again.products() == [f"/product/{shop['tales']}"]
    assert again.previous_page() is None
    assert again.next_page() is not None
    assert 'aria-current="page">Page 1</span>' in shown_again.text
    # A page number no page has is page 1 to the indicator, never a 500.
    absurd = await client.get(link.replace("page=2", "page=" + "9" * 5000), headers=BROWSER)
    assert absurd.status_code == 200
    assert 'aria-current="page">Page 1</span>' in absurd.text
    # The same service as GET /products: the same products, in the same order.
    api = (await client.get(f"/products?{query.replace('limit=1', 'limit=10')}")).json()
    assert [item["id"] for item in api["items"]] == [shop["tales"], shop["guide"]]


async def test_a_form_field_left_empty_is_a_filter_not_given_and_leaves_the_url(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    url = "/search?q=&category=books&in_stock=&price_min=&price_max=&created_after=&sort="
    sent = await client.get(url, headers=BROWSER)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/search?category=books"
    page = _html(await client.get(sent.headers["location"], headers=BROWSER))
    assert len(page.products()) == 4  # the books

    empty = await client.get("/search?q=&sort=", headers=BROWSER)
    assert empty.headers["location"] == "/search"


async def test_dates_from_the_form_filter_by_creation(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    page = _html(await client.get("/search?created_before=2000-01-01", headers=BROWSER))
    assert page.products() == []
    page = _html(await client.get("/search?created_after=2000-01-01", headers=BROWSER))
    assert len(page.products()) == len(shop)


async def test_an_empty_result_says_so_and_links_to_the_search_without_each_filter(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    response = await client.get("/search?q=dinosaur&category=garden", headers=BROWSER)
    page = _html(response)
    assert page.products() == []
    assert "No products match" in response.text
    assert {"/search?category=garden", "/search?q=dinosaur"} <= set(page.hrefs())


@pytest.mark.parametrize(
    ("query", "named"),
    [("price_min=abc", "Lowest price"), ("created_after=yesterday", "Added after")],
)
async def test_a_bad_filter_is_a_page_that_names_it_with_the_request_id(
    client: httpx.AsyncClient, query: str, named: str
) -> None:
    response = await client.get(f"/search?q=dinosaur&{query}", headers=BROWSER)
    page = _html(response, 422)
    assert named in response.text
    assert response.headers["X-Request-ID"] in response.text
    assert response.headers["Cache-Control"] == "no-store"
    # The form is still there, with what was asked, to correct it, the field marked.
    assert any(control.get("value") == "dinosaur" for control in page.controls)
    field = query.split("=")[0]
    marked = next(control for control in page.controls if control.get("id") == field)
    assert marked["aria-invalid"] == "true"
    assert marked["aria-describedby"] == f"{field}-error"
    assert "autofocus" in marked
    assert f'<p class="field-error" id="{field}-error">{named} ' in response.text


async def test_a_cursor_that_is_not_ours_is_a_page_with_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/search?cursor=forged.cursor", headers=BROWSER)
    _html(response, 400)
    assert "The cursor is not one this service made." in response.text
    assert response.headers["X-Request-ID"] in response.text


async def test_the_product_page_shows_the_product_and_links_to_its_category(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    response = await client.get(f"/product/{shop['atlas']}", headers=BROWSER)
    page = _html(response)
    for shown in ("Dinosaur atlas", "Every dinosaur, drawn to scale.", "30.00", "In stock (10)"):
        assert shown in response.text
    assert "/search?category=books" in page.hrefs()
    assert page.h1s == 1


async def test_a_product_out_of_stock_says_so(
    client: httpx.AsyncClient, shop: dict[str, int]
) -> None:
    response = await client.get(f"/product/{shop['gone']}", headers=BROWSER)
    _html(response)
    assert "Out of stock" in response.text


@pytest.mark.parametrize(("path", "status"), [("/product/999999", 404), ("/product/abc", 422)])
async def test_a_product_that_does_not_exist_is_a_page_with_the_request_id(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path, headers=BROWSER)
    _html(response, status)
    assert response.headers["X-Request-ID"] in response.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/products/999999", 404),  # an API route, asked for by a browser
        ("POST", "/search", 405),
        ("DELETE", "/", 405),
    ],
)
async def test_every_problem_a_browser_meets_is_a_page_and_an_api_client_keeps_json(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    page = await client.request(method, path, headers=BROWSER)
    _html(page, status)
    assert page.headers["Vary"].startswith("Accept")
    assert page.headers["X-Request-ID"] in page.text
    if status == 405:
        assert page.headers["Allow"]

    api = await client.request(method, path, headers={"Accept": "application/json"})
    assert_problem(api, status)


async def test_a_browsers_body_over_the_limit_is_a_page(client: httpx.AsyncClient) -> None:
    # Refused from its Content-Length, before any route, by the body limit.
    page = await client.post("/cart", content=b"x" * (2 * 2**20), headers=BROWSER)
    _html(page, 413)
    assert "MiB" in page.text


async def test_a_single_mistake_is_said_once_on_its_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/product/abc", headers=BROWSER)
    _html(page, 422)
    assert page.text.count("valid integer") == 1


async def test_text_from_the_catalog_is_escaped(client: httpx.AsyncClient) -> None:
    product_id = await _add(client, "XSS-1", name="<script>alert(1)</script>")
    response = await client.get(f"/product/{product_id}", headers=BROWSER)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<script" not in response.text


PAGES = [
    "/",
    "/search",
    "/search?q=dinosaur",
    "/search?price_min=x",
    "/product/{atlas}",
    "/product/0",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_has_a_strict_csp_nosniff_one_h1_and_a_label_for_each_control(
    client: httpx.AsyncClient, shop: dict[str, int], path: str
) -> None:
    response = await client.get(path.format(**shop), headers=BROWSER)
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = Page(response.text)
    assert page.lang == "en"
    assert page.h1s == 1
    unlabelled = [c for c in page.controls if c.get("id") not in page.labelled]
    assert unlabelled == []
    # No inline script or style, which the policy would block.
    assert "<script" not in response.text
    assert "<style" not in response.text
    assert " style=" not in response.text


async def test_the_stylesheet_is_served_and_kept_for_a_year_under_its_versioned_url(
    client: httpx.AsyncClient,
) -> None:
    [stylesheet] = _html(await client.get("/", headers=BROWSER)).stylesheets
    assert stylesheet.startswith("/static/catalog.css?v=")
    response = await client.get(stylesheet)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert ":focus-visible" in response.text
    unversioned = await client.get("/static/catalog.css")
    assert unversioned.headers["Cache-Control"] == "no-cache"


def _count_line(html: str) -> str:
    found = re.search(r'<p class="found-count">([^<]*)</p>', html)
    assert found is not None, html
    return found[1]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("", "6 products"),
        ("?category=books", "4 products"),
        ("?category=garden", "1 product"),
        ("?q=dinosaur", "5 products"),
        ("?q=dinosaur&in_stock=true", "4 products"),
        ("?category=books&price_max=12", "1 product"),
    ],
)
async def test_results_say_how_many_products_match(
    client: httpx.AsyncClient, shop: dict[str, int], query: str, said: str
) -> None:
    shown = await client.get(f"/search{query}", headers=BROWSER)
    _html(shown)
    assert _count_line(shown.text) == said


async def test_a_broad_search_is_counted_up_to_a_bound_and_says_so(
    client: httpx.AsyncClient, app: Any
) -> None:
    from sqlalchemy import insert

    from catalog.products.models import Product
    from catalog.products.repository import recount_categories
    from catalog.products.service import COUNTED_UP_TO

    rows = [
        {
            "sku": f"BULK-{number:05d}",
            "name": f"Bulk lantern {number}",
            "description": "",
            "price": "5.00",
            "stock": 1 if number < COUNTED_UP_TO else 0,
            "category": "lamps",
            "version": 1,
        }
        for number in range(COUNTED_UP_TO + 2)
    ]
    async with app.state.engine.begin() as connection:
        await connection.execute(insert(Product), rows)
        await recount_categories(connection)
    # One category, and the whole catalog: exact, from the categories table.
    exact = await client.get("/search?category=lamps", headers=BROWSER)
    assert _count_line(exact.text) == "1,002 products"
    assert _count_line((await client.get("/search", headers=BROWSER)).text) == "1,002 products"
    # Anything else is counted no further than the bound, and says so.
    for query in ("q=lantern", "category=lamps&price_min=1", "price_max=6"):
        shown = await client.get(f"/search?{query}", headers=BROWSER)
        assert _count_line(shown.text) == "More than 1,000 products (not counted further)"
    # At the bound itself, exact.
    shown = await client.get("/search?category=lamps&in_stock=true", headers=BROWSER)
    assert _count_line(shown.text) == "1,000 products"
