"""The products API over HTTP, on every backend."""

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import assert_problem, product_payload


async def create(
    client: httpx.AsyncClient, sku: str = "SKU-1", **fields: object
) -> dict[str, object]:
    response = await client.post("/products", json=product_payload(sku, **fields))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_created_product_is_returned_with_location_and_etag(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/products", json=product_payload())

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"].endswith(f"/products/{body['id']}")
    assert response.headers["etag"] == '"1"'
    assert body["sku"] == "SKU-1"
    assert body["price"] == "24.90"
    assert body["version"] == 1
    assert body["created_at"] == body["updated_at"]
    fetched = await client.get(response.headers["location"])
    assert fetched.json() == body


async def test_price_round_trips_exactly(client: httpx.AsyncClient) -> None:
    # 0.1 + 0.2 style values and the largest price all come back to the cent.
    for index, price in enumerate(["0.10", "0.29", "1234567.89", "9999999999.99", "0"]):
        body = await create(client, f"PRICE-{index}", price=price)
        fetched = (await client.get(f"/products/{body['id']}")).json()
        assert Decimal(fetched["price"]) == Decimal(price)
        assert fetched["price"] == str(Decimal(price).quantize(Decimal("0.01")))


async def test_price_as_json_number_is_refused_with_the_form_to_use(
    client: httpx.AsyncClient,
) -> None:
    body = assert_problem(await client.post("/products", json=product_payload(price=19.99)), 422)
    assert '"19.99"' in body["errors"][0]["msg"]


async def test_timestamps_are_utc_and_timezone_aware(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    body = await create(client)
    fetched = (await client.get(f"/products/{body['id']}")).json()
    created = datetime.fromisoformat(str(fetched["created_at"]))
    assert created.utcoffset() is not None
    assert created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((created - before).total_seconds()) < 60


async def test_duplicate_sku_is_a_conflict(client: httpx.AsyncClient) -> None:
    await create(client, "DUP-1")

    response = await client.post("/products", json=product_payload("DUP-1", name="Other"))

    body = assert_problem(response, 409)
    assert "DUP-1" in body["detail"]
    listing = (await client.get("/products", params={"count": "exact"})).json()
    assert listing["total"] == 1


async def test_unknown_product_is_not_found(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/products/987654"), 404)
    assert "987654" in body["detail"]


async def test_get_returns_etag_with_version(client: httpx.AsyncClient) -> None:
    product = await create(client)
    response = await client.get(f"/products/{product['id']}")
    assert response.headers["etag"] == '"1"'


async def test_patch_changes_only_the_fields_sent_and_bumps_version(
    client: httpx.AsyncClient,
) -> None:
    product = await create(client)

    response = await client.patch(f"/products/{product['id']}", json={"stock": 3, "category": None})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stock"] == 3
    assert body["category"] is None
    assert body["name"] == product["name"]
    assert body["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert body["updated_at"] > body["created_at"]
    assert (await client.get(f"/products/{product['id']}")).json() == body


async def test_patch_with_current_etag_succeeds(client: httpx.AsyncClient) -> None:
    product = await create(client)
    response = await client.patch(
        f"/products/{product['id']}", json={"name": "New name"}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "New name"


async def test_patch_with_stale_etag_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    product = await create(client)
    await client.patch(f"/products/{product['id']}", json={"stock": 5})

    response = await client.patch(
        f"/products/{product['id']}", json={"stock": 99}, headers={"If-Match": '"1"'}
    )

    assert_problem(response, 412)
    current = (await client.get(f"/products/{product['id']}")).json()
    assert current["stock"] == 5
    assert current["version"] == 2


async def test_weak_etag_never_matches_if_match(client: httpx.AsyncClient) -> None:
    product = await create(client)
    response = await client.patch(
        f"/products/{product['id']}", json={"stock": 1}, headers={"If-Match": 'W/"1"'}
    )
    assert_problem(response, 412)


async def test_patch_to_a_taken_sku_is_a_conflict(client: httpx.AsyncClient) -> None:
    await create(client, "TAKEN")
    other = await create(client, "FREE")
    response = await client.patch(f"/products/{other['id']}", json={"sku": "TAKEN"})
    assert_problem(response, 409)
    assert (await client.get(f"/products/{other['id']}")).json()["sku"] == "FREE"


async def test_patch_cannot_null_a_required_field(client: httpx.AsyncClient) -> None:
    product = await create(client)
    assert_problem(await client.patch(f"/products/{product['id']}", json={"name": None}), 422)


async def test_patch_of_unknown_product_is_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch("/products/424242", json={"stock": 1}), 404)


async def test_delete_removes_the_product(client: httpx.AsyncClient) -> None:
    product = await create(client)

    response = await client.delete(f"/products/{product['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/products/{product['id']}"), 404)
    assert_problem(await client.delete(f"/products/{product['id']}"), 404)


async def test_delete_with_stale_etag_is_refused(client: httpx.AsyncClient) -> None:
    product = await create(client)
    await client.patch(f"/products/{product['id']}", json={"stock": 5})
    assert_problem(
        await client.delete(f"/products/{product['id']}", headers={"If-Match": '"1"'}), 412
    )
    assert (await client.get(f"/products/{product['id']}")).status_code == 200


async def test_deleted_ids_are_not_reused(client: httpx.AsyncClient) -> None:
    first = await create(client, "A")
    await client.delete(f"/products/{first['id']}")
    second = await create(client, "B")
    assert second["id"] > first["id"]  # type: ignore[operator]


async def test_listing_is_ordered_by_id_with_total(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, f"L-{index}"))["id"] for index in range(5)]

    page = (
        await client.get("/products", params={"limit": 2, "offset": 1, "count": "exact"})
    ).json()

    assert page["total"] == 5
    assert page["limit"] == 2
    assert page["offset"] == 1
    assert [item["id"] for item in page["items"]] == ids[1:3]


async def test_listing_an_empty_catalog(client: httpx.AsyncClient) -> None:
    page = (await client.get("/products")).json()
    assert page == {
        "items": [],
        "next_cursor": None,
        "previous_cursor": None,
        "total": None,
        "limit": 20,
        "offset": 0,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", "1e400"),
        ("price", 1e300),
        ("price", "-0.01"),
        ("price", "0.001"),
        ("price", "NaN"),
        ("price", "Infinity"),
        ("price", "12345678901.00"),
        ("price", ""),
        ("price", "1,50"),
        ("price", 5),
        ("stock", -1),
        ("stock", 2**31),
        ("stock", 10**30),
        ("stock", "5"),
        ("stock", 1.5),
        ("name", ""),
        ("name", "x" * 201),
        ("name", "nul\x00byte"),
        ("name", "line\nbreak"),
        ("description", "nul\x00byte"),
        ("description", "x" * 5001),
        ("sku", ""),
        ("sku", "has space"),
        ("sku", "x" * 65),
        ("category", ""),
        ("category", "x" * 101),
    ],
)
async def test_bad_values_are_rejected_with_422_and_nothing_is_written(
    client: httpx.AsyncClient, field: str, value: object
) -> None:
    response = await client.post("/products", json=product_payload(**{field: value}))

    body = assert_problem(response, 422)
    assert any(error["loc"][:2] == ["body", field] for error in body["errors"]), body
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0


async def test_unknown_fields_are_rejected(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.post("/products", json=product_payload(colour="red")), 422)
    assert body["errors"][0]["loc"] == ["body", "colour"]


async def test_missing_fields_are_listed(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.post("/products", json={}), 422)
    missing = {tuple(error["loc"]) for error in body["errors"]}
    assert {("body", "sku"), ("body", "name"), ("body", "price")} <= missing


async def test_malformed_json_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/products", content=b'{"sku": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": -1},
        {"limit": 0},
        {"limit": 10**12},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": 10**12},
    ],
)
async def test_bad_paging_is_a_422(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    assert_problem(await client.get("/products", params=params), 422)


@pytest.mark.parametrize("product_id", ["0", "-1", str(2**63), str(10**30), "abc"])
async def test_bad_product_ids_are_a_422(client: httpx.AsyncClient, product_id: str) -> None:
    assert_problem(await client.get(f"/products/{product_id}"), 422)


async def test_body_over_the_limit_is_413(app: FastAPI, client: httpx.AsyncClient) -> None:
    huge_name = "x" * (10 * 1024 * 1024)
    response = await client.post("/products", json=product_payload(name=huge_name))
    body = assert_problem(response, 413)
    assert f"{app.state.settings.max_body_bytes:,} bytes" in body["detail"]
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"sku": "S", "name": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'", "price": "1.00"}'

    response = await client.post(
        "/products", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no-such-thing"), 404)


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.put("/products/1", json={})
    assert_problem(response, 405)
    assert "allow" in response.headers
