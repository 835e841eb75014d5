"""Deterministic demo products: the same seed always gives the same rows."""

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.bulk import (
    begin_bulk,
    indexes_built_after,
    insert_rows,
    settle,
    storage_rows,
    transactional_ddl,
)
from catalog.products import repository
from catalog.products.models import Product
from catalog.products.schemas import name_key

__all__ = ["demo_products", "seed_products"]

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
# Rare on purpose: searches for it should find few products (about 0.2 %).
_RARE_TOPIC = "dinosaurs"
# Books about it at fixed rows, on top of the rate, so that the 1,000 products of
# `make run` answer the seeds' example, "books about dinosaurs published after 2020",
# with a handful: at 1,000 rows these are dated from late 2021 on. Fixed rows rather
# than a higher rate keep the word as rare at a million rows (five more among ~2,000),
# and in the oldest rows, away from the newest ones that the benchmarks' dinosaur
# search walks. They are set after the row's draws, so every other row stays the same.
_DINOSAUR_BOOK_ROWS = frozenset(range(450, 1001, 125))
_BOOK_NOUNS = ("atlas", "field guide")


_COLUMNS = (
    "sku", "name", "name_key", "description", "price", "stock",
    "category", "version", "created_at", "updated_at",
)  # fmt: skip
_CAPITALIZED = tuple(adjective.capitalize() for adjective in _ADJECTIVES)


def _demo_rows(count: int, seed: int) -> Iterator[tuple[Any, ...]]:
    # Values in _COLUMNS order. Indexing tuples with random() is several times cheaper
    # than random.choice, which matters at a million rows.
    rng = random.Random(seed)  # noqa: S311 - demo data must be reproducible, not secret
    rand = rng.random
    step = _SPAN_SECONDS / max(count, 1)
    dinosaur_books = _DINOSAUR_BOOK_ROWS
    for number in range(1, count + 1):
        topic = _RARE_TOPIC if rand() < 0.002 else _TOPICS[int(rand() * len(_TOPICS))]
        noun = _NOUNS[int(rand() * len(_NOUNS))]
        adjective = _ADJECTIVES[int(rand() * len(_ADJECTIVES))]
        article = "An" if adjective[0] in "aeiou" else "A"
        # Products arrive over the years in id order, as in a real catalog: creation
        # dates spread evenly over the span and rise with the id.
        created = _EPOCH + timedelta(seconds=int((number - 1 + rand()) * step))
        title = _CAPITALIZED[int(rand() * len(_CAPITALIZED))]
        price = Decimal(99 + int(rand() * 49_901)).scaleb(-2)
        stock = int(rand() * 500)
        category = _CATEGORIES[int(rand() * len(_CATEGORIES))]
        if number in dinosaur_books:
            topic, noun, category = _RARE_TOPIC, _BOOK_NOUNS[number % len(_BOOK_NOUNS)], "books"
        name = f"{title} {noun} about {topic}"
        yield (
            f"DEMO-{number:07d}",
            name,
            name_key(name),
            f"{article} {adjective} {noun} for anyone who loves {topic}.",
            price,
            stock,
            category,
            1,
            created,
            created,
        )


def demo_products(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """`count` demo product rows, always the same for the same `seed`."""
    for row in _demo_rows(count, seed):
        yield dict(zip(_COLUMNS, row, strict=True))


async def seed_products(
    engine: AsyncEngine,
    *,
    count: int,
    seed: int,
    on_progress: Callable[[int, float], None] | None = None,
    batch_size: int = _BATCH_SIZE,
) -> int:
    """Load `count` demo products into an empty catalog; returns how many.

    A bulk load (catalog.db.bulk): the secondary indexes are dropped, the rows go in at
    the driver's fastest (COPY on PostgreSQL, executemany batches elsewhere), and the
    indexes and the text index are built once at the end. On PostgreSQL and SQLite it
    is all one transaction, so a failed seed leaves the catalog as it was. MariaDB
    commits each batch (its DDL commits anyway) and rebuilds the indexes even on
    failure. The next batch is generated in a thread while the database takes the last.
    """
    table = cast(Table, Product.__table__)
    started = time.perf_counter()
    done = 0
    rows = _demo_rows(count, seed)

    def next_batch() -> list[tuple[Any, ...]]:
        batch = list(islice(rows, batch_size))
        return storage_rows(table, _COLUMNS, batch, engine.dialect)

    async with engine.connect() as connection:
        if not await repository.is_empty(connection):
            raise ValueError("seeding needs an empty catalog")
        await connection.commit()
        await begin_bulk(connection)
        async with indexes_built_after(connection, table.name):
            pending = asyncio.create_task(asyncio.to_thread(next_batch))
            try:
                while batch := await pending:
                    pending = asyncio.create_task(asyncio.to_thread(next_batch))
                    await insert_rows(connection, table, _COLUMNS, batch)
                    if not transactional_ddl(connection):
                        await connection.commit()
                    done += len(batch)
                    if on_progress is not None:
                        on_progress(done, done / max(time.perf_counter() - started, 1e-9))
            finally:
                pending.cancel()
            await repository.rebuild_text_index(connection)
        await repository.recount_categories(connection)
        await connection.commit()
        await settle(connection, table.name)
    return done
