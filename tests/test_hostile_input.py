"""Hostile input, one class of it per test: every answer is a 4xx problem or the right
success, never a 5xx, on every backend (issue 14's findings and their siblings)."""

import base64
import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.base import utcnow
from catalog.db.errors import ConstraintKind, constraint_violation
from catalog.db.session import SessionDep
from catalog.products.models import Product
from catalog.products.schemas import MAX_STOCK, ProductFilters, ProductSort
from catalog.users.models import User
from tests.helpers import assert_problem, bearer, create_user, product_payload


async def _product(client: httpx.AsyncClient, sku: str = "H-1", **fields: Any) -> dict[str, Any]:
    response = await client.post("/products", json=product_payload(sku, **fields))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _buyer(app: FastAPI, email: str = "buyer@example.com") -> dict[str, str]:
    return bearer(await create_user(app.state.engine, email), app.state.settings)


# -- timestamps a database cannot hold ------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-00:01"],
)
@pytest.mark.parametrize("bound", ["created_after", "created_before"])
async def test_times_beyond_the_years_a_utc_column_holds_are_422(
    client: httpx.AsyncClient, bound: str, moment: str
) -> None:
    body = assert_problem(await client.get("/products", params={bound: moment}), 422)
    assert body["errors"][0]["loc"] == ["query", bound]


async def test_the_first_and_last_representable_times_filter_the_same_everywhere(
    client: httpx.AsyncClient,
) -> None:
    await _product(client)
    earliest, latest = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"
    for params, expected in [
        ({"created_after": earliest}, 1),
        ({"created_before": latest}, 1),
        ({"created_after": latest}, 0),
        ({"created_before": earliest}, 0),
    ]:
        response = await client.get("/products", params={**params, "count": "exact"})
        assert response.status_code == 200, response.text
        assert response.json()["total"] == expected, params


# -- request values never become SQL text -------------------------------------------

SQL_LOOKING = [
    ":name",
    ":1",
    "%s",
    "%(x)s",
    "$1",
    "?",
    "'",
    "''; DROP TABLE products; --",
    "\\",
    "::text",
]


@pytest.mark.parametrize("value", SQL_LOOKING)
@pytest.mark.parametrize("count", ["estimated", "exact"])
async def test_sql_looking_filters_are_plain_values_in_counts(
    client: httpx.AsyncClient, value: str, count: str
) -> None:
    await _product(client, category="books")
    for params in ({"q": value}, {"category": value}, {"q": f"dinosaur {value}"}):
        response = await client.get("/products", params={**params, "count": count})
        if response.status_code == 422:  # a q with no word in it to find: said so
            assert params == {"q": value}, response.text
            assert response.json()["errors"][0]["type"] == "nothing_to_find"
            continue
        assert response.status_code == 200, (params, response.text)
        assert isinstance(response.json()["total"], int)
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 1


# -- If-Match tags beyond any version ---------------------------------------------------


@pytest.mark.parametrize(
    "tag", ['"2147483648"', '"9999999999"', '"2", "4294967296"', 'W/"1", "99999999999"']
)
async def test_if_match_beyond_any_version_is_412(client: httpx.AsyncClient, tag: str) -> None:
    product = await _product(client)
    url = f"/products/{product['id']}"
    assert_problem(await client.patch(url, json={"stock": 1}, headers={"If-Match": tag}), 412)
    assert_problem(await client.delete(url, headers={"If-Match": tag}), 412)
    assert (await client.get(url)).json()["version"] == 1


@pytest.mark.parametrize("tag", ['"01"', '"0000000001"', '"+1"', '" 1"', "1"])
async def test_if_match_compares_tags_character_by_character(
    client: httpx.AsyncClient, tag: str
) -> None:
    product = await _product(client)
    url = f"/products/{product['id']}"
    assert_problem(await client.patch(url, json={"stock": 1}, headers={"If-Match": tag}), 412)
    assert (await client.patch(url, json={"stock": 1}, headers={"If-Match": '"1"'})).is_success


# -- money and stock at their limits -------------------------------------------------


@pytest.mark.parametrize(
    ("price", "quantity", "total"),
    [
        ("9999999999.99", 2, "19999999999.98"),
        ("1000000.00", 10_000, "10000000000.00"),
        ("9999999999.99", 10_000, "99999999999900.00"),
    ],
)
async def test_every_order_the_api_accepts_is_stored_with_its_exact_total(
    app: FastAPI, client: httpx.AsyncClient, price: str, quantity: int, total: str
) -> None:
    product = await _product(client, price=price, stock=10_000)
    buyer = await _buyer(app)
    placed = await client.post(
        "/orders",
        json={"items": [{"product_id": product["id"], "quantity": quantity}]},
        headers=buyer,
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["total"] == total
    stored = await client.get(f"/orders/{placed.json()['id']}", headers=buyer)
    assert stored.json()["total"] == total


async def test_the_largest_order_fits(app: FastAPI, client: httpx.AsyncClient) -> None:
    items = []
    for n in range(100):
        product = await _product(client, f"BIG-{n}", price="9999999999.99", stock=10_000)
        items.append({"product_id": product["id"], "quantity": 10_000})
    placed = await client.post("/orders", json={"items": items}, headers=await _buyer(app))
    assert placed.status_code == 201, placed.text
    assert placed.json()["total"] == "9999999999990000.00"


async def test_a_cancel_that_would_push_stock_past_its_limit_is_409_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    product = await _product(client, stock=10)
    buyer = await _buyer(app)
    order = (
        await client.post(
            "/orders", json={"items": [{"product_id": product["id"], "quantity": 5}]}, headers=buyer
        )
    ).json()
    url = f"/products/{product['id']}"
    assert (await client.patch(url, json={"stock": MAX_STOCK})).status_code == 200

    refused = await client.post(f"/orders/{order['id']}/cancel", headers=buyer)

    body = assert_problem(refused, 409)
    assert body["product_id"] == product["id"]
    assert (await client.get(f"/orders/{order['id']}", headers=buyer)).json()["status"] == "placed"
    assert (await client.get(url)).json()["stock"] == MAX_STOCK
    # With room for the units, the same cancel goes through.
    assert (await client.patch(url, json={"stock": MAX_STOCK - 5})).status_code == 200
    assert (await client.post(f"/orders/{order['id']}/cancel", headers=buyer)).status_code == 200
    assert (await client.get(url)).json()["stock"] == MAX_STOCK


# -- JSON types where integers belong -----------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        {"quantity": True},
        {"quantity": "1"},
        {"quantity": 1.5},
        {"quantity": None},
        {"product_id": True},
        {"product_id": "1"},
        {"product_id": [1]},
    ],
)
async def test_booleans_strings_and_fractions_are_not_quantities_or_ids(
    app: FastAPI, client: httpx.AsyncClient, line: dict[str, Any]
) -> None:
    product = await _product(client)
    body = {"product_id": product["id"], "quantity": 1, **line}
    response = await client.post("/orders", json={"items": [body]}, headers=await _buyer(app))
    assert_problem(response, 422)
    assert (await client.get(f"/products/{product['id']}")).json()["stock"] == 10


@pytest.mark.parametrize("stock", [True, "5", 1.5, 2**31])
async def test_booleans_strings_and_fractions_are_not_stock(
    client: httpx.AsyncClient, stock: object
) -> None:
    assert_problem(await client.post("/products", json=product_payload(stock=stock)), 422)


# -- JSON read as it was written: no rounding floats, no repeated keys ---------------

_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "quantity",
    ["0.99999999999999999999", "1.00000000000000000001", "1e-400", "NaN", "Infinity", "-0.5"],
)
async def test_a_number_that_rounds_to_a_whole_one_is_no_quantity(
    app: FastAPI, client: httpx.AsyncClient, quantity: str
) -> None:
    product = await _product(client)
    body = f'{{"items": [{{"product_id": {product["id"]}, "quantity": {quantity}}}]}}'
    response = await client.post("/orders", content=body, headers={**_JSON, **await _buyer(app)})
    assert_problem(response, 422)
    assert (await client.get(f"/products/{product['id']}")).json()["stock"] == 10


async def test_a_whole_number_written_with_a_fraction_part_is_still_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # JSON Schema counts 2.0 and 2e0 as integers; so does the API.
    product = await _product(client)
    buyer = await _buyer(app)
    for quantity in ("2.0", "2e0"):
        body = f'{{"items": [{{"product_id": {product["id"]}, "quantity": {quantity}}}]}}'
        response = await client.post("/orders", content=body, headers={**_JSON, **buyer})
        assert response.status_code == 201, response.text
    assert (await client.get(f"/products/{product['id']}")).json()["stock"] == 6


@pytest.mark.parametrize("stock", ["99.99999999999999999", "1" * 5000, "1e999999"])
async def test_a_stock_that_would_round_or_overflow_is_422(
    client: httpx.AsyncClient, stock: str
) -> None:
    payload = json.dumps(product_payload()).replace('"stock": 10', f'"stock": {stock}')
    assert f'"stock": {stock}' in payload
    assert_problem(await client.post("/products", content=payload, headers=_JSON), 422)
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        '{{"items": [{{"product_id": {id}, "quantity": 1, "quantity": 2}}]}}',
        '{{"items": [{{"product_id": {id}, "quantity": 1}}], "items": []}}',
    ],
)
async def test_a_key_given_twice_is_422(app: FastAPI, client: httpx.AsyncClient, body: str) -> None:
    product = await _product(client)
    response = await client.post(
        "/orders", content=body.format(id=product["id"]), headers={**_JSON, **await _buyer(app)}
    )
    problem = assert_problem(response, 422)
    assert "twice" in json.dumps(problem)
    assert (await client.get(f"/products/{product['id']}")).json()["stock"] == 10


async def test_a_price_is_a_string_even_when_read_exactly(client: httpx.AsyncClient) -> None:
    payload = json.dumps(product_payload()).replace('"price": "24.90"', '"price": 24.90')
    assert '"price": 24.90' in payload
    assert_problem(await client.post("/products", content=payload, headers=_JSON), 422)


# -- forged tokens (anyone holding the key could make them) -------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "²"},
        {"sub": "\u0661"},  # ARABIC-INDIC DIGIT ONE
        {"sub": "9" * 19},
        {"sub": "0"},
        {"sub": "-1"},
        {"sub": "01"},
        {"sub": " 1"},
        {"sub": "1.0"},
        {"sub": 1},
        {"sub": ["1"]},
        {"sub": "1", "exp": "soon"},
        {"sub": "1", "exp": float("nan")},
        {"sub": "1", "exp": True},
    ],
    ids=repr,
)
async def test_forged_token_claims_are_401(
    app: FastAPI, client: httpx.AsyncClient, claims: dict[str, Any]
) -> None:
    payload = {"exp": int(time.time()) + 600, **claims}
    key = app.state.settings.signing_secret.get_secret_value()
    # PyJWT refuses to encode some of these claims itself: build such tokens by hand.
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
    signature = hmac.new(key.encode(), header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)


async def test_a_token_for_a_user_id_beyond_bigint_is_401(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = app.state.settings.signing_secret.get_secret_value()
    token = jwt.encode({"sub": str(2**63), "exp": int(time.time()) + 600}, key)
    assert_problem(await client.get("/users/me", headers={"Authorization": f"Bearer {token}"}), 401)


# -- forged cursors --------------------------------------------------------------------


def _signed_cursor(settings: Settings, body: bytes) -> str:
    # As catalog.pagination signs them: a key of its own derived from the signing key.
    secret = settings.signing_secret.get_secret_value().encode()
    key = hmac.new(secret, b"catalog pagination cursor", hashlib.sha256).digest()
    signature = hmac.new(key, body, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(body)}.{b64(signature)}"


def _scope(sort: ProductSort, q: str | None = None) -> str:
    return hashlib.sha256(ProductFilters(q=q).scope(sort).encode()).hexdigest()[:16]


BAD_POSITIONS: list[tuple[str, str]] = [
    (sort, position)
    for sort in ("id", "-id", "name", "price", "-created_at")
    for position in [
        "[NaN, 1]",
        "[Infinity, 1]",
        "[-Infinity, 1]",
        "[1, NaN]",
        "[1e400, 1]",
        f"[1, {2**64}]",
        f"[{2**64}, 1]",
        "[1, 0]",
        "[1, -5]",
        "[1, true]",
        '[1, "1"]',
        "[[1], 1]",
        '[{"a": 1}, 1]',
        "[null, 1]",
        '["10000-01-01T00:00:00+00:00", 1]',
        '["+10000-01-01T00:00:00", 1]',
        '["9999-12-31T23:59:59-14:00", 1]',
        '["2024-01-01T00:00:00", 1]',
        '["1e99", 1]',
        '["NaN", 1]',
        "[1]",
        "[1, 2, 3]",
        "[]",
    ]
    # Any string is a name: those positions are fine for sort=name.
    if not (sort == "name" and position.startswith('["'))
]


@pytest.mark.parametrize(("sort", "position"), BAD_POSITIONS)
async def test_cursors_holding_values_no_column_can_hold_are_400(
    app: FastAPI, client: httpx.AsyncClient, sort: str, position: str
) -> None:
    body = f'{{"q":"{_scope(ProductSort(sort))}","p":{position}}}'.encode()
    cursor = _signed_cursor(app.state.settings, body)
    response = await client.get("/products", params={"sort": sort, "cursor": cursor})
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "position",
    ['["nul\\u0000name", 1]', '["line\\nbreak", 1]', '["a", 1, "after"]', '["a", 1, "before", 2]'],
)
async def test_a_name_cursor_with_a_control_character_or_no_direction_is_400(
    app: FastAPI, client: httpx.AsyncClient, position: str
) -> None:
    # The key is needed to forge these; PostgreSQL refused the NUL with a 500 all the same.
    body = f'{{"q":"{_scope(ProductSort("name"))}","p":{position}}}'.encode()
    cursor = _signed_cursor(app.state.settings, body)
    response = await client.get("/products", params={"sort": "name", "cursor": cursor})
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'"text"', b"null", b"12", b"{", b"[" * 5000, b'{"q": 1}', b"\xff\xfe"],
)
async def test_cursors_that_are_not_json_objects_are_400(
    app: FastAPI, client: httpx.AsyncClient, body: bytes
) -> None:
    cursor = _signed_cursor(app.state.settings, body)[:1024]
    assert_problem(await client.get("/products", params={"cursor": cursor}), 400)


@pytest.mark.parametrize("position", ["[NaN, 1]", "[true, 1]", '["1", 1]', "[1e400, 1]"])
async def test_relevance_cursors_with_a_rank_that_is_no_number_are_400(
    app: FastAPI, client: httpx.AsyncClient, position: str
) -> None:
    body = f'{{"q":"{_scope(ProductSort.RELEVANCE, "guide")}","p":{position}}}'.encode()
    cursor = _signed_cursor(app.state.settings, body)
    response = await client.get("/products", params={"q": "guide", "cursor": cursor})
    assert_problem(response, 400)


# -- database errors: only outages are 503 ---------------------------------------------


async def test_an_unknown_column_is_a_bug_500_not_database_unavailable_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.get("/test-only/unknown-column")
    async def unknown_column(session: SessionDep) -> None:
        await session.execute(text("SELECT no_such_column FROM products"))

    body = assert_problem(await client.get("/test-only/unknown-column"), 500)
    assert "no_such_column" not in json.dumps(body)  # nothing of the internals


# -- roles the code does not know --------------------------------------------------------


async def test_the_database_refuses_a_role_the_code_does_not_know(engine: AsyncEngine) -> None:
    user_id = await create_user(engine, "role@example.com")
    for statement in (
        insert(User).values(
            email="x@example.com",
            password_hash="x",
            role="superuser",
            created_at=utcnow(),
            updated_at=utcnow(),
        ),
        update(User).where(User.id == user_id).values(role="Admin"),
    ):
        with pytest.raises(DBAPIError) as caught:
            async with engine.begin() as connection:
                await connection.execute(statement)
        violation = constraint_violation(caught.value, engine.dialect.name)
        assert violation is not None, caught.value
        assert violation.kind is ConstraintKind.CHECK


async def test_products_with_no_price_or_stock_limit_break_nothing(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    # The largest values the columns hold, written past the API: reads still answer.
    async with engine.begin() as connection:
        await connection.execute(
            insert(Product).values(
                sku="EDGE-1",
                name="edge",
                description="",
                price=Decimal("9999999999.99"),
                stock=MAX_STOCK,
                version=2**31 - 1,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    listing = await client.get("/products", params={"sort": "-price", "count": "estimated"})
    assert listing.status_code == 200
    product = listing.json()["items"][0]
    assert product["price"] == "9999999999.99"
    assert product["stock"] == MAX_STOCK


# -- bodies built to cost CPU ----------------------------------------------------------


async def test_thousands_of_unknown_keys_are_one_short_422(client: httpx.AsyncClient) -> None:
    body = json.dumps({**product_payload(), **{f"k{n}": 0 for n in range(5000)}})
    started = time.perf_counter()
    response = await client.post(
        "/products", content=body, headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422)
    assert len(problem["errors"]) == 50
    assert "4950 more not listed" in problem["detail"]
    assert len(response.content) < 10_000
    assert time.perf_counter() - started < 2


async def test_the_largest_valid_product_fits_the_body_limit(client: httpx.AsyncClient) -> None:
    # Every character outside the BMP, escaped by the client: 12 bytes each.
    payload = product_payload(name="😀" * 200, description="😀" * 5000, category="😀" * 100)
    body = json.dumps(payload, ensure_ascii=True)
    response = await client.post(
        "/products", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize(("sent", "answered"), [("7.5", "7.50"), ("7", "7.00"), ("0", "0.00")])
async def test_a_price_is_answered_as_stored_from_the_first_response(
    client: httpx.AsyncClient, sent: str, answered: str
) -> None:
    created = await client.post("/products", json=product_payload(price=sent))
    assert created.json()["price"] == answered
    fetched = await client.get(created.headers["location"])
    assert fetched.json() == created.json()
    assert fetched.headers["etag"] == created.headers["etag"]
    patched = await client.patch(created.headers["location"], json={"price": sent})
    assert patched.json()["price"] == answered


# -- methods and shapes of answers --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/products/1", "DELETE, GET, HEAD, PATCH"),
        ("OPTIONS", "/products", "GET, HEAD, POST"),
        ("DELETE", "/orders", "GET, HEAD, POST"),
        ("GET", "/auth/token", "POST"),
    ],
)
async def test_a_method_not_allowed_names_every_method_the_path_takes(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stock": -1}, "stock"),
        ({"stock": True}, "stock"),
        ({"price": 5}, "price"),
        ({"sku": " "}, "sku"),
    ],
)
async def test_a_bad_patch_names_the_field_alone(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    product = await _product(client)
    response = await client.patch(f"/products/{product['id']}", json=change)
    problem = assert_problem(response, 422)
    assert [error["loc"] for error in problem["errors"]] == [["body", field]]


async def test_a_content_length_of_thousands_of_digits_is_413(client: httpx.AsyncClient) -> None:
    # int() refuses past 4,300 digits: the size check must not ask it.
    response = await client.post(
        "/products", content=b"{}", headers={**_JSON, "Content-Length": "9" * 5000}
    )
    assert_problem(response, 413)
