"""Orders: all or nothing, prices from the catalog, idempotent retries, cancellation."""

import asyncio
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from catalog.db.engine import create_engine
from tests.conftest import TEST_APPLICATION_NAME, Backend
from tests.helpers import assert_problem, bearer, create_user, only_on, product_payload


@pytest.fixture
async def products(client: httpx.AsyncClient) -> list[dict[str, object]]:
    """Three products, 10 in stock each, created by the admin client."""
    created = []
    for index, price in enumerate(["2.50", "10.00", "0.99"]):
        response = await client.post(
            "/products", json=product_payload(f"ORD-{index}", price=price, stock=10)
        )
        created.append(response.json())
    return created


@pytest.fixture
async def buyer(app: FastAPI) -> dict[str, str]:
    """A customer's Authorization header."""
    return bearer(await create_user(app.state.engine, "buyer@example.com"), app.state.settings)


async def stock(client: httpx.AsyncClient, product: dict[str, object]) -> int:
    return int((await client.get(f"/products/{product['id']}")).json()["stock"])


async def order(
    client: httpx.AsyncClient, headers: dict[str, str], *lines: tuple[object, int], **extra: str
) -> httpx.Response:
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return await client.post("/orders", json={"items": items}, headers={**headers, **extra})


async def test_an_order_takes_the_stock_at_catalog_prices(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    first, second, _ = products

    response = await order(client, buyer, (second["id"], 1), (first["id"], 3))

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "placed"
    assert Decimal(body["total"]) == Decimal("2.50") * 3 + Decimal("10.00")
    assert {
        (line["product_id"], line["quantity"], line["unit_price"]) for line in body["items"]
    } == {
        (first["id"], 3, "2.50"),
        (second["id"], 1, "10.00"),
    }
    assert response.headers["location"].endswith(f"/orders/{body['id']}")
    assert await stock(client, first) == 7
    assert await stock(client, second) == 9


async def test_a_client_cannot_set_the_price(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    items = [{"product_id": products[0]["id"], "quantity": 1, "unit_price": "0.01"}]
    assert_problem(await client.post("/orders", json={"items": items}, headers=buyer), 422)
    assert await stock(client, products[0]) == 10


async def test_an_order_short_of_stock_changes_nothing_and_names_the_products(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    first, second, third = products

    response = await order(client, buyer, (first["id"], 2), (second["id"], 11), (third["id"], 12))

    body = assert_problem(response, 409)
    assert body["short_of_stock"] == [second["id"], third["id"]]
    assert [await stock(client, product) for product in products] == [10, 10, 10]
    assert (await client.get("/orders", headers=buyer)).json()["total"] == 0


async def test_an_unknown_product_is_404_and_changes_nothing(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    body = assert_problem(await order(client, buyer, (products[0]["id"], 1), (987654, 1)), 404)
    assert body["unknown"] == [987654]
    assert await stock(client, products[0]) == 10


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"product_id": 1, "quantity": 0}],
        [{"product_id": 1, "quantity": -1}],
        [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}],
        [{"product_id": 0, "quantity": 1}],
    ],
)
async def test_bad_orders_are_422(
    client: httpx.AsyncClient, buyer: dict[str, str], items: list[object]
) -> None:
    assert_problem(await client.post("/orders", json={"items": items}, headers=buyer), 422)


async def test_ordering_needs_a_token(
    client: httpx.AsyncClient, products: list[dict[str, object]]
) -> None:
    response = await order(client, {"Authorization": ""}, (products[0]["id"], 1))
    assert_problem(response, 401)


async def test_a_retry_with_the_same_idempotency_key_returns_the_first_order(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    key = {"Idempotency-Key": "order-7f3a"}
    first = await order(client, buyer, (products[0]["id"], 2), **key)
    retry = await order(client, buyer, (products[0]["id"], 2), **key)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert await stock(client, products[0]) == 8
    assert (await client.get("/orders", headers=buyer)).json()["total"] == 1


async def test_a_retry_that_lists_the_same_lines_in_another_order_is_the_same_order(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    key = {"Idempotency-Key": "order-lines-swapped"}
    first = await order(client, buyer, (products[0]["id"], 1), (products[1]["id"], 2), **key)
    retry = await order(client, buyer, (products[1]["id"], 2), (products[0]["id"], 1), **key)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert await stock(client, products[0]) == 9


async def test_the_same_idempotency_key_with_another_body_is_422(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    key = {"Idempotency-Key": "order-7f3a"}
    await order(client, buyer, (products[0]["id"], 2), **key)
    response = await order(client, buyer, (products[0]["id"], 3), **key)
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await stock(client, products[0]) == 8


async def test_idempotency_keys_belong_to_their_user(
    app: FastAPI,
    client: httpx.AsyncClient,
    products: list[dict[str, object]],
    buyer: dict[str, str],
) -> None:
    other = bearer(await create_user(app.state.engine, "other@example.com"), app.state.settings)
    key = {"Idempotency-Key": "same-key"}
    mine = await order(client, buyer, (products[0]["id"], 1), **key)
    theirs = await order(client, other, (products[0]["id"], 1), **key)
    assert mine.json()["id"] != theirs.json()["id"]
    assert await stock(client, products[0]) == 8


async def test_orders_are_listed_newest_first_and_only_ones_own(
    app: FastAPI,
    client: httpx.AsyncClient,
    products: list[dict[str, object]],
    buyer: dict[str, str],
) -> None:
    ids = [(await order(client, buyer, (products[0]["id"], 1))).json()["id"] for _ in range(3)]
    other = bearer(await create_user(app.state.engine, "other@example.com"), app.state.settings)
    theirs = (await order(client, other, (products[1]["id"], 1))).json()

    page = (await client.get("/orders", params={"limit": 2}, headers=buyer)).json()
    assert page["total"] == 3
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    assert (await client.get(f"/orders/{ids[0]}", headers=buyer)).status_code == 200
    assert_problem(await client.get(f"/orders/{theirs['id']}", headers=buyer), 404)


async def test_cancelling_gives_the_stock_back_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    products: list[dict[str, object]],
    buyer: dict[str, str],
) -> None:
    placed = (await order(client, buyer, (products[0]["id"], 4), (products[1]["id"], 1))).json()
    other = bearer(await create_user(app.state.engine, "other@example.com"), app.state.settings)
    assert_problem(await client.post(f"/orders/{placed['id']}/cancel", headers=other), 404)

    response = await client.post(f"/orders/{placed['id']}/cancel", headers=buyer)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert [await stock(client, product) for product in products[:2]] == [10, 10]
    assert_problem(await client.post(f"/orders/{placed['id']}/cancel", headers=buyer), 409)
    assert [await stock(client, product) for product in products[:2]] == [10, 10]


async def test_a_product_that_was_ordered_cannot_be_deleted(
    client: httpx.AsyncClient, products: list[dict[str, object]], buyer: dict[str, str]
) -> None:
    await order(client, buyer, (products[0]["id"], 1))
    body = assert_problem(await client.delete(f"/products/{products[0]['id']}"), 409)
    assert "ordered" in body["detail"]
    assert (await client.get(f"/products/{products[0]['id']}")).status_code == 200
    assert (await client.delete(f"/products/{products[2]['id']}")).status_code == 204


@only_on("postgresql")
async def test_an_order_chosen_as_a_deadlock_victim_is_retried_and_placed(
    backend: Backend,
    client: httpx.AsyncClient,
    products: list[dict[str, object]],
    buyer: dict[str, str],
) -> None:
    first, second = products[0]["id"], products[1]["id"]
    outsider = create_engine(backend.settings(), pooled=False)
    lock_first = text("UPDATE products SET stock = stock WHERE id = :id").bindparams(id=first)
    lock_second = text("UPDATE products SET stock = stock WHERE id = :id").bindparams(id=second)
    deadlocks = text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    try:
        async with outsider.connect() as other:
            before = (await other.execute(deadlocks)).scalar_one()
            await other.execute(lock_second)
            placing = asyncio.create_task(order(client, buyer, (first, 1), (second, 1)))
            # The order holds the first product and waits for the second...
            blocked = text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND wait_event_type = 'Lock'"
            ).bindparams(name=TEST_APPLICATION_NAME)
            async with outsider.connect() as watcher:
                for _ in range(200):
                    if (await watcher.execute(blocked)).scalar_one():
                        break
                    await asyncio.sleep(0.02)
            # ...and now this waits for the first: a cycle. The order, waiting longer,
            # finds it first and is aborted; its transaction runs again.
            await other.execute(lock_first)
            await other.commit()
        response = await asyncio.wait_for(placing, 20)
        async with outsider.connect() as probe:
            after = (await probe.execute(deadlocks)).scalar_one()
    finally:
        await outsider.dispose()

    assert response.status_code == 201, response.text
    assert after - before >= 1
    assert [await stock(client, product) for product in products[:2]] == [9, 9]
    assert (await client.get("/orders", headers=buyer)).json()["total"] == 1
