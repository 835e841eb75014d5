"""GET /products: filters that combine, total orders, keyset cursors that never skip or repeat."""

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.products.models import Product
from tests.helpers import assert_problem, product_payload

START = datetime(2021, 1, 1, tzinfo=UTC)
CATEGORIES = ("books", "games", None)


async def _insert(engine: AsyncEngine, count: int, *, first: int = 0, seed: int = 1) -> None:
    rng = random.Random(seed)
    rows = []
    for number in range(first, first + count):
        moment = START + timedelta(days=rng.randrange(0, 1500), seconds=number)
        rows.append(
            {
                "sku": f"L-{number:05d}",
                # Few distinct names and prices: plenty of ties for the id to break.
                "name": rng.choice(["Atlas", "atlas", "Boat", "Candle", "Dinosaur book"]),
                "description": "",
                "price": Decimal(rng.choice(["1.00", "2.50", "2.50", "9.99", "120.00"])),
                "stock": rng.choice([0, 0, 1, 5]),
                "category": rng.choice(CATEGORIES),
                "version": 1,
                "created_at": moment,
                "updated_at": moment,
            }
        )
    async with engine.begin() as connection:
        await connection.execute(insert(Product), rows)


@pytest.fixture
async def catalog(engine: AsyncEngine, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """60 products with ties in every sort key; what the API says they are."""
    await _insert(engine, 60)
    page = await client.get("/products/export")
    return [json.loads(line) for line in page.text.splitlines()]


async def walk(client: httpx.AsyncClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page by cursor, checking the Link header on the way."""
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        response = await client.get(
            "/products", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["items"]
        cursor = body["next_cursor"]
        link = response.headers.get("link", "")
        assert (body["previous_cursor"] is None) == (len(seen) == len(body["items"]))
        if body["previous_cursor"] is not None:
            assert f'cursor={body["previous_cursor"]}>; rel="prev"' in link
        if cursor is None:
            assert 'rel="next"' not in link
            return seen
        assert f'cursor={cursor}>; rel="next"' in link
    pytest.fail("paging did not end")


async def walk_back(
    client: httpx.AsyncClient, params: dict[str, Any], cursor: str
) -> list[dict[str, Any]]:
    """Every page before `cursor` by Previous, in order; the Next of each page back
    leads to the page that was left."""
    seen: list[dict[str, Any]] = []
    for _ in range(100):
        body = (await client.get("/products", params={**params, "cursor": cursor})).json()
        assert body["items"], body
        assert body["next_cursor"] is not None
        ahead = await client.get("/products", params={**params, "cursor": body["next_cursor"]})
        assert ahead.json()["items"][0]["id"] not in {p["id"] for p in body["items"]}
        seen = body["items"] + seen
        cursor = body["previous_cursor"]
        if cursor is None:
            return seen
    pytest.fail("paging back did not end")


def _key(product: dict[str, Any], sort: str) -> Any:
    column = sort.lstrip("-")
    value = product[column]
    if column == "price":
        return Decimal(value)
    if column == "name":
        return value
    return value


@pytest.mark.parametrize("sort", ["id", "-id", "price", "-price", "created_at", "-created_at"])
async def test_cursor_paging_visits_every_product_once_in_sort_order(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]], sort: str
) -> None:
    seen = await walk(client, {"sort": sort, "limit": 7})

    assert len(seen) == len(catalog)
    assert len({product["id"] for product in seen}) == len(catalog)
    descending = sort.startswith("-")
    expected = sorted(catalog, key=lambda p: (_key(p, sort), p["id"]), reverse=descending)
    assert [p["id"] for p in seen] == [p["id"] for p in expected]


@pytest.mark.parametrize(
    "sort", ["id", "-id", "price", "-price", "name", "-name", "created_at", "-created_at"]
)
async def test_previous_pages_lead_back_to_the_first_in_the_same_order(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]], sort: str
) -> None:
    params = {"sort": sort, "limit": 7}
    forward = await walk(client, params)
    last = (await client.get("/products", params={**params, "offset": 56})).json()
    assert last["items"] == forward[56:]
    back = await walk_back(client, params, last["previous_cursor"])
    assert [p["id"] for p in back] == [p["id"] for p in forward[:56]]
    # Back at the start: the same first page as without a cursor, and no Previous.
    first = (await client.get("/products", params=params)).json()
    assert back[:7] == first["items"]
    assert first["previous_cursor"] is None


async def test_previous_pages_of_a_search_by_relevance(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]]
) -> None:
    params = {"q": "atlas", "limit": 4}
    forward = await walk(client, params)
    assert len(forward) > 8, "the data should give several pages"
    second = (await client.get("/products", params=params)).json()["next_cursor"]
    third = (await client.get("/products", params={**params, "cursor": second})).json()
    back = await walk_back(client, params, third["previous_cursor"])
    assert [p["id"] for p in back] == [p["id"] for p in forward[:4]]


async def test_a_previous_cursor_is_signed_as_a_next_one_is(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]], app: Any
) -> None:
    from catalog.pagination import encode_cursor
    from catalog.products.schemas import ProductFilters, ProductSort

    scope = ProductFilters().scope(ProductSort.ID)
    settings = app.state.settings
    ids = sorted(p["id"] for p in catalog)
    fifth = ids[4]
    for position in ([fifth, fifth, "after"], [fifth, fifth, "before", 1], [fifth, "before"]):
        cursor = encode_cursor(position, scope=scope, settings=settings)
        assert_problem(await client.get("/products", params={"cursor": cursor}), 400)
    good = encode_cursor([fifth, fifth, "before"], scope=scope, settings=settings)
    body = (await client.get("/products", params={"cursor": good})).json()
    assert [p["id"] for p in body["items"]] == ids[:4]
    assert body["previous_cursor"] is None


@pytest.mark.parametrize("sort", ["name", "-name"])
async def test_sorting_by_name_is_total_and_follows_the_database_collation(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]], sort: str
) -> None:
    seen = await walk(client, {"sort": sort, "limit": 9})
    one_page = (await client.get("/products", params={"sort": sort, "limit": 200})).json()["items"]
    # However the database compares "Atlas" and "atlas", pages agree with one big page.
    assert [p["id"] for p in seen] == [p["id"] for p in one_page]
    assert len({p["id"] for p in seen}) == len(catalog)


async def test_filters_combine(client: httpx.AsyncClient, catalog: list[dict[str, Any]]) -> None:
    params = {
        "category": "books",
        "price_min": "2.00",
        "price_max": "10.00",
        "in_stock": "true",
        "created_after": "2021-06-01T00:00:00Z",
        "created_before": "2024-01-01T00:00:00+00:00",
    }
    seen = await walk(client, {**params, "limit": 3})

    def matches(p: dict[str, Any]) -> bool:
        created = datetime.fromisoformat(p["created_at"])
        return (
            p["category"] == "books"
            and Decimal("2.00") <= Decimal(p["price"]) <= Decimal("10.00")
            and p["stock"] > 0
            and datetime(2021, 6, 1, tzinfo=UTC) < created < datetime(2024, 1, 1, tzinfo=UTC)
        )

    expected = [p["id"] for p in catalog if matches(p)]
    assert expected, "the data should have matches"
    assert [p["id"] for p in seen] == expected
    exact = (await client.get("/products", params={**params, "count": "exact"})).json()
    assert exact["total"] == len(expected)


async def test_out_of_stock_filter(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]]
) -> None:
    seen = await walk(client, {"in_stock": "false", "limit": 50})
    assert {p["id"] for p in seen} == {p["id"] for p in catalog if p["stock"] == 0}


async def test_counts(client: httpx.AsyncClient, catalog: list[dict[str, Any]]) -> None:
    default = (await client.get("/products")).json()
    assert default["total"] is None
    exact = (await client.get("/products", params={"count": "exact"})).json()
    assert exact["total"] == len(catalog)
    estimated = (await client.get("/products", params={"count": "estimated"})).json()
    assert isinstance(estimated["total"], int)
    assert estimated["total"] >= 0
    # Every filter at once, text search included, can be estimated (EXPLAIN of literal SQL).
    everything = {
        "q": 'dinosaur\'s "atlas"',
        "category": "books",
        "price_min": "1.00",
        "price_max": "90.00",
        "created_after": "2020-01-01T00:00:00Z",
        "in_stock": "true",
        "count": "estimated",
    }
    response = await client.get("/products", params=everything)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["total"], int)


async def test_paging_by_cursor_survives_concurrent_inserts(
    engine: AsyncEngine, client: httpx.AsyncClient, catalog: list[dict[str, Any]]
) -> None:
    seen: list[int] = []
    cursor = None
    inserted = 0
    while True:
        params = {"sort": "price", "limit": 8, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/products", params=params)).json()
        seen += [p["id"] for p in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Others keep adding products, at every price, between our pages.
        await _insert(engine, 5, first=1000 + inserted, seed=inserted)
        inserted += 5
    assert len(seen) == len(set(seen))  # nothing twice
    assert {p["id"] for p in catalog} <= set(seen)  # nothing that existed was skipped


async def test_a_malformed_cursor_is_400(client: httpx.AsyncClient) -> None:
    for cursor in ("garbage", "a.b", "....", "eyJ.eyJ", "x" * 1000):
        body = assert_problem(await client.get("/products", params={"cursor": cursor}), 400)
        assert "cursor" in body["detail"]


async def test_a_tampered_cursor_is_400(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]]
) -> None:
    cursor = (await client.get("/products", params={"limit": 5})).json()["next_cursor"]
    body, signature = cursor.split(".")
    forged = base64.urlsafe_b64encode(b'{"q":"x","p":[1,1]}').rstrip(b"=").decode()
    # One character of the signature changed (to another one: a signature may already
    # hold any given character there, as 1 in 64 do).
    altered = ("B" if signature[0] == "A" else "A") + signature[1:]
    for bad in (f"{forged}.{signature}", f"{body}.{altered}", f"{body}x.{signature}"):
        assert_problem(await client.get("/products", params={"limit": 5, "cursor": bad}), 400)


async def test_a_cursor_for_another_sort_or_filter_is_400(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]]
) -> None:
    cursor = (await client.get("/products", params={"sort": "price", "limit": 5})).json()[
        "next_cursor"
    ]
    body = assert_problem(
        await client.get("/products", params={"sort": "-price", "limit": 5, "cursor": cursor}), 400
    )
    assert "another sort or filter" in body["detail"]
    assert_problem(
        await client.get(
            "/products", params={"sort": "price", "category": "books", "limit": 5, "cursor": cursor}
        ),
        400,
    )


async def test_deep_offsets_point_to_the_cursor(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/products", params={"offset": 10_001}), 422)
    assert "next_cursor" in body["detail"]
    assert (await client.get("/products", params={"offset": 10_000})).status_code == 200


async def test_a_cursor_with_an_offset_is_422(
    client: httpx.AsyncClient, catalog: list[dict[str, Any]]
) -> None:
    cursor = (await client.get("/products", params={"limit": 5})).json()["next_cursor"]
    response = await client.get("/products", params={"limit": 5, "cursor": cursor, "offset": 5})
    assert_problem(response, 422)


_NAMES = [
    "banana",
    "Apple",
    "apple",
    "Zebra",
    "éclair",
    "eclair",
    "Straße",
    "STRASSE",
    "ﬁg",  # the ligature: NFKC makes it "fig"
    "FIG",
    "Ünter",
    "unter",
    "10 tools",
    "9 tools",
    "naïve ",
    "naïve",
]


@pytest.mark.parametrize("sort", ["name", "-name"])
async def test_names_sort_the_same_way_on_every_backend(
    client: httpx.AsyncClient, sort: str
) -> None:
    from catalog.products.schemas import name_key

    made = []
    for number, name in enumerate(_NAMES):
        response = await client.post("/products", json=product_payload(f"N-{number}", name=name))
        assert response.status_code == 201, response.text
        made.append(response.json())
    # Normalised (NFKC), case-folded, then code point by code point; ties by id.
    expected = sorted(made, key=lambda p: (name_key(p["name"]), p["id"]))
    if sort == "-name":
        expected = sorted(made, key=lambda p: (name_key(p["name"]), p["id"]), reverse=True)
    seen = await walk(client, {"sort": sort, "limit": 5})
    assert [p["name"] for p in seen] == [p["name"] for p in expected]
    # For instance: "Apple" and "apple" together, before "banana"; "Zebra" after it.
    names = [p["name"] for p in seen]
    if sort == "name":
        assert names.index("banana") > max(names.index("Apple"), names.index("apple"))
        assert names.index("Zebra") > names.index("banana")
