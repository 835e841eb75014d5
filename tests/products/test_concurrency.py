"""Concurrent changes to one product: none lost, and If-Match lets exactly one win."""

import asyncio

import httpx

from tests.helpers import product_payload


async def test_concurrent_patches_are_all_applied_in_turn(client: httpx.AsyncClient) -> None:
    product = (await client.post("/products", json=product_payload())).json()

    responses = await asyncio.gather(
        *(client.patch(f"/products/{product['id']}", json={"stock": n}) for n in range(20))
    )

    assert [response.status_code for response in responses] == [200] * 20
    # Every change bumped the version once: none was lost or applied twice.
    assert sorted(response.json()["version"] for response in responses) == list(range(2, 22))
    final = (await client.get(f"/products/{product['id']}")).json()
    assert final["version"] == 21


async def test_concurrent_patches_with_the_same_if_match_let_exactly_one_win(
    client: httpx.AsyncClient,
) -> None:
    product = (await client.post("/products", json=product_payload())).json()

    responses = await asyncio.gather(
        *(
            client.patch(
                f"/products/{product['id']}", json={"stock": n}, headers={"If-Match": '"1"'}
            )
            for n in range(20)
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * 19
    winner = next(response for response in responses if response.status_code == 200)
    final = (await client.get(f"/products/{product['id']}")).json()
    assert final["version"] == 2
    assert final["stock"] == winner.json()["stock"]


async def test_concurrent_creations_of_one_new_sku_make_one_product_and_409s(
    client: httpx.AsyncClient,
) -> None:
    # On MariaDB, inserts of the same new key can deadlock; they are retried, so each
    # request gets a real answer: one 201, the rest 409.
    responses = await asyncio.gather(
        *(client.post("/products", json=product_payload("RACE-1")) for _ in range(20))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 19
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 1
