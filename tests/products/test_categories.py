"""Categories are data: spelled one way, each with a count that every product write
keeps in its own transaction, and that always equals a count of the products."""

import asyncio
import json
import unicodedata
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.models import Category, Product
from catalog.products.export import ExportFormat
from catalog.products.seed import seed_products
from catalog.products.transfer import OnError, import_file
from tests.helpers import assert_problem, product_payload


async def _kept(engine: AsyncEngine) -> dict[str, int]:
    """The categories table, without the categories left at 0."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(Category.name, Category.product_count))
        return {name: count for name, count in rows if count}


async def _counted(engine: AsyncEngine) -> dict[str, int]:
    """The truth: the products counted by category."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(Product.category, func.count())
            .where(Product.category.is_not(None))
            .group_by(Product.category)
        )
        return dict(rows.all())


async def _assert_kept(engine: AsyncEngine, expected: dict[str, int]) -> None:
    assert await _counted(engine) == expected
    assert await _kept(engine) == expected


async def test_every_product_write_moves_its_categorys_count(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = []
    for sku, category in (("A", "books"), ("B", "books"), ("C", "toys"), ("D", None)):
        created = await client.post("/products", json=product_payload(sku, category=category))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    await _assert_kept(engine, {"books": 2, "toys": 1})

    assert (await client.patch(f"/products/{ids[0]}", json={"category": "garden"})).is_success
    assert (await client.patch(f"/products/{ids[3]}", json={"category": "Toys"})).is_success
    assert (await client.patch(f"/products/{ids[2]}", json={"category": None})).is_success
    # Not the category: its count stays.
    assert (await client.patch(f"/products/{ids[1]}", json={"stock": 3})).is_success
    await _assert_kept(engine, {"books": 1, "garden": 1, "toys": 1})

    assert (await client.delete(f"/products/{ids[1]}")).status_code == 204
    await _assert_kept(engine, {"garden": 1, "toys": 1})


async def test_a_refused_write_leaves_the_counts_as_they_were(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    product = (await client.post("/products", json=product_payload("A"))).json()
    await client.post("/products", json=product_payload("B", category="toys"))

    stale = {"If-Match": '"7"'}
    moved = await client.patch(f"/products/{product['id']}", json={"category": "x"}, headers=stale)
    assert_problem(moved, 412)
    assert_problem(await client.delete(f"/products/{product['id']}", headers=stale), 412)
    taken = await client.patch(f"/products/{product['id']}", json={"sku": "B", "category": "y"})
    assert_problem(taken, 409)
    assert_problem(await client.patch("/products/999999", json={"category": "z"}), 404)

    await _assert_kept(engine, {"books": 1, "toys": 1})


async def test_concurrent_moves_creations_and_deletions_keep_every_count_exact(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ids = [
        (await client.post("/products", json=product_payload(f"P-{n}", category="books"))).json()[
            "id"
        ]
        for n in range(12)
    ]
    names = ["books", "toys", "garden"]
    writes = [
        *(
            client.patch(f"/products/{product_id}", json={"category": names[(n + k) % 3]})
            for n, product_id in enumerate(ids)
            for k in (1, 2)
        ),
        *(client.delete(f"/products/{product_id}") for product_id in ids[:4]),
        *(
            client.post("/products", json=product_payload(f"N-{n}", category=names[n % 3]))
            for n in range(9)
        ),
    ]
    responses = await asyncio.gather(*writes)

    # A PATCH may find its product deleted meanwhile (404); nothing else fails.
    assert {response.status_code for response in responses} <= {200, 201, 204, 404}
    counted = await _counted(engine)
    assert sum(counted.values()) == 12 - 4 + 9
    assert await _kept(engine) == counted


async def test_an_import_moves_the_counts_with_its_rows(
    client: httpx.AsyncClient, engine: AsyncEngine, tmp_path: Path
) -> None:
    await client.post("/products", json=product_payload("OLD-1", category="books"))
    await client.post("/products", json=product_payload("OLD-2", category="books"))
    rows = [
        product_payload("OLD-1", category="Garden"),  # moves
        product_payload("NEW-1", category="toys"),
        product_payload("NEW-2", category="KITCHEN"),
        product_payload("NEW-2", category="toys"),  # the same SKU again: its last row wins
        product_payload("NEW-3", category=None),
    ]
    path = tmp_path / "moves.ndjson"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    report = await import_file(
        engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.ABORT, batch_size=2
    )

    assert report.errors == []
    await _assert_kept(engine, {"books": 1, "garden": 1, "toys": 2})


async def test_a_seeded_catalog_has_its_categories_counted(engine: AsyncEngine) -> None:
    await seed_products(engine, count=500, seed=3)

    counted = await _counted(engine)
    assert sum(counted.values()) == 500
    assert await _kept(engine) == counted


@pytest.mark.parametrize(
    "spelled",
    [
        "Kitchen",
        " kitchen ",
        "KITCHEN",
        "\N{FULLWIDTH LATIN SMALL LETTER K}itchen",
    ],
)
async def test_one_category_however_it_is_spelled(
    client: httpx.AsyncClient, engine: AsyncEngine, spelled: str
) -> None:
    await client.post("/products", json=product_payload("A", category="kitchen"))
    created = await client.post("/products", json=product_payload("B", category=spelled))

    assert created.json()["category"] == "kitchen"
    await _assert_kept(engine, {"kitchen": 2})
    found = await client.get("/products", params={"category": spelled, "count": "exact"})
    assert found.json()["total"] == 2


async def test_composed_and_decomposed_accents_are_one_category(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    composed, decomposed = "Café", unicodedata.normalize("NFD", "Café")
    assert composed != decomposed
    await client.post("/products", json=product_payload("A", category=composed))
    await client.post("/products", json=product_payload("B", category=decomposed))

    await _assert_kept(engine, {"café": 2})
    # Accents stay: café is not cafe.
    plain = await client.get("/products", params={"category": "cafe", "count": "exact"})
    assert plain.json()["total"] == 0


async def test_a_decomposed_search_finds_what_was_stored_composed(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/products", json=product_payload("A", name="Crème brûlée torch"))
    await client.post(
        "/products", json=product_payload("B", name=unicodedata.normalize("NFD", "Crème pot"))
    )

    for query in ("crème", unicodedata.normalize("NFD", "crème")):
        found = (await client.get("/products", params={"q": query})).json()["items"]
        assert sorted(item["sku"] for item in found) == ["A", "B"], query
