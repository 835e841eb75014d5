"""Deterministic demo products: the same seed always gives the same rows."""

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog.products.models import Product

__all__ = ["count_products", "demo_products", "seed_products"]

_BATCH_SIZE = 10_000
_EPOCH = datetime(2019, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = int(timedelta(days=6 * 365).total_seconds())

_CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "toys", "tools")
_ADJECTIVES = (
    "ancient", "bright", "compact", "curious", "deluxe", "durable", "elegant", "essential",
    "fast", "gentle", "handmade", "heavy", "illustrated", "large", "modern", "quiet",
    "rugged", "small", "smart", "vintage",
)  # fmt: skip
_NOUNS = (
    "atlas", "backpack", "blender", "board game", "candle", "chair", "field guide", "guitar",
    "hammer", "kettle", "lamp", "notebook", "puzzle", "record", "saw", "speaker", "tent",
    "trowel", "watering can", "yo-yo",
)  # fmt: skip
_TOPICS = (
    "birds", "cooking", "gardening", "history", "jazz", "knots", "mountains", "oceans",
    "rivers", "space", "stars", "trains", "woodwork",
)  # fmt: skip
# Rare on purpose: searches for it should find few products.
_RARE_TOPIC = "dinosaurs"


def _product_row(rng: random.Random, number: int) -> dict[str, Any]:
    topic = _RARE_TOPIC if rng.random() < 0.002 else rng.choice(_TOPICS)
    noun = rng.choice(_NOUNS)
    adjective = rng.choice(_ADJECTIVES)
    article = "An" if adjective[0] in "aeiou" else "A"
    created = _EPOCH + timedelta(seconds=rng.randrange(_SPAN_SECONDS))
    return {
        "sku": f"DEMO-{number:07d}",
        "name": f"{rng.choice(_ADJECTIVES).capitalize()} {noun} about {topic}",
        "description": f"{article} {adjective} {noun} for anyone who loves {topic}.",
        "price": Decimal(rng.randrange(99, 50_000)) / 100,
        "stock": rng.randrange(0, 500),
        "category": rng.choice(_CATEGORIES),
        "version": 1,
        "created_at": created,
        "updated_at": created,
    }


def demo_products(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """`count` demo product rows, always the same for the same `seed`."""
    rng = random.Random(seed)  # noqa: S311 - demo data must be reproducible, not secret
    for number in range(1, count + 1):
        yield _product_row(rng, number)


async def count_products(engine: AsyncEngine) -> int:
    """How many products the database holds."""
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(Product))).scalar_one()


_COLUMNS = (
    "sku", "name", "description", "price", "stock",
    "category", "version", "created_at", "updated_at",
)  # fmt: skip


async def _copy(connection: AsyncConnection, batch: list[dict[str, Any]]) -> None:
    # PostgreSQL's COPY through asyncpg: the fastest way in, several times a multi-row
    # INSERT. The values are already the column types (Decimal, aware datetimes).
    raw = await connection.get_raw_connection()
    records = [tuple(row[column] for column in _COLUMNS) for row in batch]
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "products", records=records, columns=_COLUMNS
    )


async def seed_products(
    engine: AsyncEngine,
    *,
    count: int,
    seed: int,
    on_progress: Callable[[int, float], None] | None = None,
) -> int:
    """Insert `count` demo products in batches, one transaction each; returns how many.

    PostgreSQL (asyncpg) gets COPY; the others one executemany per batch, which the
    drivers turn into multi-row INSERTs (asyncmy) or a prepared statement run per row
    in C (sqlite3). The text indexes follow: PostgreSQL's column is generated, SQLite's
    triggers fire, MariaDB's FULLTEXT index is maintained by InnoDB.
    """
    started = time.perf_counter()
    done = 0
    rows = demo_products(count, seed)
    use_copy = engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"
    while True:
        batch = [row for _, row in zip(range(_BATCH_SIZE), rows, strict=False)]
        if not batch:
            return done
        async with engine.begin() as connection:
            if use_copy:
                await _copy(connection, batch)
            else:
                await connection.execute(insert(Product), batch)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, done / max(time.perf_counter() - started, 1e-9))
