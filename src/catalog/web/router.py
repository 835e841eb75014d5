"""The shoppers' pages: home, search results, a product. Read-only, no script needed.

Each page calls the same services as the JSON API (`GET /products`, `GET
/products/{id}`), so the same rules, validation and signed cursors apply.
"""

from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from catalog.config import SettingsDep
from catalog.consistency import ReplicaReaderDep, get_replica_reader
from catalog.errors import prefers_html, problem_response
from catalog.products import service as product_service
from catalog.products.router import ProductId
from catalog.products.schemas import IN_WORDS, ProductQuery, ProductSort, normal_category
from catalog.requestid import current_request_id
from catalog.web.pages import PageRoute, decimal_point, mistakes, path_to, redirect, render
from catalog.web.visitors import VisitorDep, csrf_token

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_NEWEST = ProductQuery(sort=ProductSort.CREATED_AT_DESC, limit=8)

# The filters a results page offers, with the words its form uses for each.
_FILTER_LABELS = {
    "q": "Search",
    "category": "Category",
    "price_min": "Lowest price",
    "price_max": "Highest price",
    "created_after": "Added after",
    "created_before": "Added before",
    "in_stock": "Availability",
}
_LABELS = {
    **_FILTER_LABELS,
    "sort": "Sort by",
    "limit": "Per page",
    "cursor": "Page",
    "offset": "Page",
}
_SORTS = [
    ("-created_at", "Newest first"),
    ("created_at", "Oldest first"),
    ("price", "Price, low to high"),
    ("-price", "Price, high to low"),
    ("name", "Name, A to Z"),
    ("-name", "Name, Z to A"),
]
_AVAILABILITY = [("", "Any"), ("true", "In stock"), ("false", "Out of stock")]
# A filter's value in words, where the URL's is not.
_SHOWN = {("in_stock", value): label for value, label in _AVAILABILITY if value}
# A results page shows no total: counting every match is the API's opt-in (count=).
_NOT_TAKEN = {"count"}


@router.get("/", response_class=HTMLResponse, response_model=None)
async def home(
    request: Request, settings: SettingsDep, visitor: VisitorDep
) -> HTMLResponse | JSONResponse:
    """The home page in a browser; for API clients `/` stays the 404 it always was."""
    if not prefers_html(request.headers.get("accept", "")):
        return problem_response(404, "not-found", "Not Found", headers={"Vary": "Accept"})
    # Chosen here, after the Accept check: an API client's `/` never reads anything.
    reader = await get_replica_reader(request)
    categories = await request.app.state.category_cache.get(reader)
    newest = await product_service.list_products(reader=reader, settings=settings, query=_NEWEST)
    context = {"categories": categories, "products": newest.items}
    return render(
        request,
        "home.html",
        context,
        headers={"Vary": "Accept", "Cache-Control": settings.public_cache_control},
    )


_PRICES = ("price_min", "price_max")


def _given(request: Request, locale: str) -> dict[str, str]:
    """The query as the form sent it (a field left empty is a filter not given), its
    prices also with the locale's decimal comma."""
    return {
        name: decimal_point(value, locale) if name in _PRICES else value
        for name, value in request.query_params.items()
        if value != "" and name in ProductQuery.model_fields and name not in _NOT_TAKEN
    }


def _page_number(request: Request) -> int:
    """Which page of its search this is, as the Next links count them (display only: the
    cursor says where the page starts)."""
    text = request.query_params.get("page", "")
    # At most five digits before int(): a longer number is no page of ours, and past
    # 4,300 digits int() itself refuses it (a 500).
    if len(text) > 5 or not text.isascii() or not text.isdigit():
        return 1
    return int(text) if 1 < int(text) <= 10_000 else 1


def _search_link(request: Request, query: dict[str, str]) -> str:
    return path_to(request, "/search", query)


@router.get("/search", response_class=HTMLResponse)
async def search(
    request: Request, reader: ReplicaReaderDep, settings: SettingsDep, visitor: VisitorDep
) -> Response:
    """Search results: `GET /products`'s filters, sort and cursor, in the URL. A form
    sends its empty fields too (`?q=x&category=&price_min=`): the same search without
    them is the one URL a result page has, to share or bookmark."""
    sent = request.query_params.multi_items()
    if any(value == "" for _, value in sent):
        return redirect(request, "/search", [(name, value) for name, value in sent if value])
    given = _given(request, settings.locale)
    categories = await request.app.state.category_cache.get(reader)
    context: dict[str, Any] = {
        "given": given,
        "categories": categories,
        # As the filter reads it: `Books` selects books.
        "chosen_category": normal_category(given.get("category")),
        # No sort given: by relevance with a search, else in catalog order (by id).
        "sorts": [("", "Best match" if "q" in given else "Catalog order"), *_SORTS],
        "availability": _AVAILABILITY,
        "request_id": current_request_id(),
    }
    try:
        query = ProductQuery.model_validate(given)
    except pydantic.ValidationError as error:
        context |= {
            "mistakes": mistakes(error, _LABELS, IN_WORDS),
            "products": [],
            "next_link": None,
            "previous_link": None,
        }
        return render(
            request, "results.html", context, status_code=422, headers={"Cache-Control": "no-store"}
        )
    page = await product_service.list_products(reader=reader, settings=settings, query=query)
    if page.next_cursor is None and page.previous_cursor is None:
        # The whole result is on this page: it is its own count.
        found = product_service.ResultCount(len(page.items))
    else:
        found = await request.app.state.count_cache.get(reader, query.filters(), categories)
    unpaged = {name: value for name, value in given.items() if name not in ("cursor", "offset")}
    number = _page_number(request) if "cursor" in given else 1
    context |= {
        "mistakes": [],
        "products": page.items,
        "found": found,
        "page_number": number,
        "next_link": _search_link(
            request, {**unpaged, "cursor": page.next_cursor, "page": str(number + 1)}
        )
        if page.next_cursor is not None
        else None,
        "previous_link": _search_link(
            request,
            {
                **unpaged,
                "cursor": page.previous_cursor,
                **({"page": str(number - 1)} if number > 2 else {}),
            },
        )
        if page.previous_cursor is not None
        else None,
        "first_link": _search_link(request, unpaged) if unpaged != given else None,
        # Each filter given, and the same search without it.
        "removals": [
            {
                "label": _FILTER_LABELS[name],
                "value": _SHOWN.get((name, value), value),
                "link": _search_link(request, {k: v for k, v in unpaged.items() if k != name}),
            }
            for name, value in unpaged.items()
            if name in _FILTER_LABELS
        ],
    }
    return render(
        request, "results.html", context, headers={"Cache-Control": settings.public_cache_control}
    )


@router.get("/product/{product_id}", response_class=HTMLResponse)
async def product(
    product_id: ProductId,
    reader: ReplicaReaderDep,
    settings: SettingsDep,
    visitor: VisitorDep,
    request: Request,
) -> HTMLResponse:
    """One product: what it is, its price, whether it is in stock, and "add to cart"
    (a form, so the page is the visitor's own: its CSRF token keeps it out of caches)."""
    found = await product_service.read(reader=reader, product_id=product_id)
    context = {"product": found, "csrf": csrf_token(request, settings)}
    return render(request, "product.html", context)
