"""At least 100 concurrent buyers race for 10 units: exactly 10 are sold, on every backend."""

import asyncio
import random
from collections import Counter

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from catalog.orders.models import Order, OrderLine, OrderStatus
from catalog.products.models import Product
from tests.conftest import Backend
from tests.db.test_session import idle_in_transaction
from tests.helpers import bearer, create_user, product_payload

BUYERS = 120
STOCK = 10


async def test_concurrent_buyers_never_oversell_and_every_answer_matches_the_database(
    app: FastAPI, client: httpx.AsyncClient, backend: Backend
) -> None:
    engine = app.state.engine
    products = [
        (await client.post("/products", json=product_payload(f"HOT-{n}", stock=STOCK))).json()
        for n in range(3)
    ]
    ids = [product["id"] for product in products]
    buyers = [
        bearer(await create_user(engine, f"buyer{n}@example.com"), app.state.settings)
        for n in range(BUYERS)
    ]
    rng = random.Random(7)
    baskets = []
    for _ in range(BUYERS):
        # One, two or three products, listed in a random order, 1-3 units each.
        chosen = rng.sample(ids, rng.randint(1, 3))
        baskets.append([{"product_id": pid, "quantity": rng.randint(1, 3)} for pid in chosen])

    responses = await asyncio.gather(
        *(
            client.post("/orders", json={"items": basket}, headers=headers)
            for basket, headers in zip(baskets, buyers, strict=True)
        )
    )

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}, statuses  # no 5xx, no 503 from a lost race
    assert statuses[201] >= 1
    assert statuses[409] >= 1
    async with engine.connect() as connection:
        final = dict((await connection.execute(select(Product.id, Product.stock))).all())
        sold = dict(
            (
                await connection.execute(
                    select(OrderLine.product_id, func.sum(OrderLine.quantity))
                    .join(Order)
                    .where(Order.status == OrderStatus.PLACED.value)
                    .group_by(OrderLine.product_id)
                )
            ).all()
        )
        order_ids = set((await connection.execute(select(Order.id))).scalars())
    for product_id in ids:
        assert final[product_id] >= 0
        # Initial minus final stock is exactly what the placed orders hold.
        assert STOCK - final[product_id] == sold.get(product_id, 0)
    # Every 201 has its order row, with the lines it answered; every 409 has none.
    created = [response.json() for response in responses if response.status_code == 201]
    assert {order["id"] for order in created} == order_ids
    for response, basket in zip(responses, baskets, strict=True):
        if response.status_code == 201:
            lines = {(line["product_id"], line["quantity"]) for line in response.json()["items"]}
            assert lines == {(item["product_id"], item["quantity"]) for item in basket}
        else:
            assert set(response.json()["short_of_stock"]) <= {item["product_id"] for item in basket}
    assert all(sold.get(product_id, 0) > 0 for product_id in ids)
    assert engine.pool.checkedout() == 0
    assert await idle_in_transaction(engine, backend) == 0
