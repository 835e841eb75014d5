"""catalog seed: a bulk load that drops the secondary indexes and builds them back."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.products.repository import count_all
from catalog.products.seed import demo_products, seed_products


async def _schema_objects(engine: AsyncEngine) -> list[Any]:
    """products' indexes, and on SQLite its triggers: what a bulk load drops."""
    async with engine.connect() as connection:
        indexes = await connection.run_sync(
            lambda sync: sorted(
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in inspect(sync).get_indexes("products")
            )
        )
        if engine.dialect.name == "sqlite":
            triggers = await connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            )
            indexes += triggers.all()
    return indexes


async def test_seed_builds_every_index_back_and_search_finds_the_rows(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    before = await _schema_objects(engine)
    assert await seed_products(engine, count=300, seed=5, batch_size=64) == 300

    assert await _schema_objects(engine) == before
    demo = list(demo_products(300, seed=5))
    # Stored as the API reads it back (SQLite keeps cents and text timestamps).
    first = (await client.get("/products", params={"sort": "id", "limit": 1})).json()
    assert first["items"][0]["sku"] == demo[0]["sku"]
    assert first["items"][0]["price"] == str(demo[0]["price"])
    assert first["items"][0]["created_at"].startswith(demo[0]["created_at"].isoformat()[:19])
    # The text index covers the seeded rows.
    expected = sum(row["name"].endswith("about mountains") for row in demo)
    found = await client.get("/products", params={"q": "mountains", "count": "exact"})
    assert found.status_code == 200
    assert expected > 0
    assert found.json()["total"] == expected


async def test_a_failed_seed_leaves_the_indexes_in_place(engine: AsyncEngine) -> None:
    before = await _schema_objects(engine)

    def interrupt(done: int, _rate: float) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await seed_products(engine, count=100, seed=5, batch_size=10, on_progress=interrupt)

    assert await _schema_objects(engine) == before
    # One transaction where DDL is transactional; MariaDB keeps the batches it committed.
    expected = 20 if engine.dialect.name in ("mysql", "mariadb") else 0
    assert await count_all(engine) == expected


async def test_seed_refuses_a_catalog_that_has_products(engine: AsyncEngine) -> None:
    await seed_products(engine, count=5, seed=1)
    with pytest.raises(ValueError, match="empty"):
        await seed_products(engine, count=5, seed=2)
    assert await count_all(engine) == 5


async def test_the_demo_catalog_finds_a_handful_of_dinosaur_books_after_2020(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    # What `make run` loads: 1,000 products with `catalog seed`'s default seed.
    await seed_products(engine, count=1000, seed=42)

    found = await client.get(
        "/products",
        params={
            "q": "dinosaurs",
            "category": "books",
            "created_after": "2021-01-01T00:00:00Z",
            "count": "exact",
        },
    )

    assert found.status_code == 200
    page = found.json()
    assert 3 <= page["total"] <= 8
    assert len(page["items"]) == page["total"]
    for product in page["items"]:
        assert product["category"] == "books"
        assert "dinosaurs" in product["name"]
        assert datetime.fromisoformat(product["created_at"]) >= datetime(2021, 1, 1, tzinfo=UTC)


def test_dinosaurs_stay_rare_in_a_large_catalog() -> None:
    # docs/architecture.md explains the benchmarks' dinosaur query by "about 0.2 % of
    # products": the demo books must not make the word common. At 200,000 rows 0.2 % is
    # 400 products, give or take 20 (one standard deviation), so 0.25 % (500) only fails
    # if the word really became commoner, and 0.15 % only if it all but vanished.
    count = 200_000
    dinosaurs = sum("dinosaurs" in row["name"] for row in demo_products(count, seed=1))
    assert 0.0015 * count < dinosaurs < 0.0025 * count
