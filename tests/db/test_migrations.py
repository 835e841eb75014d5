"""The migrations build the schema the models describe, and the app checks it at start."""

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.main import create_app
from catalog.models import Base, migrations
from catalog.startup import StartupCheckError
from tests.conftest import Backend
from tests.helpers import started
from tests.throwaway import ThrowawayMariaDB


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, _type, _parents: migrations.is_modelled(name),
        },
    )
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(backend: Backend) -> None:
    engine = create_engine(backend.settings(), pooled=False)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_migrated_database_is_current(backend: Backend) -> None:
    engine = create_engine(backend.settings(), pooled=False)
    try:
        state = await migrations.state(engine)
    finally:
        await engine.dispose()
    assert state.is_current
    assert state.current


async def test_app_refuses_an_unmigrated_database_and_says_what_to_run(tmp_path: object) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/empty.db")

    with pytest.raises(StartupCheckError, match=r"catalog db upgrade"):
        async with started(create_app(settings)):
            pass


async def test_app_refuses_a_database_whose_schema_is_behind(backend: Backend) -> None:
    engine = create_engine(backend.settings(), pooled=False)
    try:
        await migrations.downgrade(engine, "base")
        with pytest.raises(StartupCheckError, match=r"behind.*catalog db upgrade"):
            async with started(create_app(backend.settings())):
                pass
    finally:
        await migrations.upgrade(engine, "head")
        await engine.dispose()


async def test_app_refuses_a_database_from_a_newer_release(tmp_path: object) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/newer.db")
    engine = create_engine(settings, pooled=False)
    try:
        await migrations.upgrade(engine)
        async with engine.begin() as connection:
            await connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'future'")
    finally:
        await engine.dispose()

    with pytest.raises(StartupCheckError, match=r"newer release"):
        async with started(create_app(settings)):
            pass


@pytest.mark.mariadb
async def test_a_latin1_database_is_converted_to_utf8mb4_keeping_exact_comparisons(
    tmp_path: Path,
) -> None:
    # mariadbd's own default character set is latin1 (the throwaway server runs with
    # --no-defaults, as a Galera node set up from scratch may): the tables of revisions
    # 0001-0005 take it, and migration 0006 converts them.
    server = ThrowawayMariaDB(tmp_path / "latin1")
    server.start()
    engine = create_engine(Settings(database_url=server.url), pooled=False)
    try:
        await migrations.upgrade(engine, "0005")
        async with engine.begin() as connection:
            assert await connection.scalar(text("SELECT @@character_set_database")) == "latin1"
            # Revision 0005 compares SKUs exactly: these two are different products.
            for sku in ("ABC", "abc"):
                await connection.execute(
                    text(
                        "INSERT INTO products (sku, name, description, price, stock, version,"
                        " created_at, updated_at) VALUES (:sku, 'Plain', '', 1, 1, 1, NOW(), NOW())"
                    ),
                    {"sku": sku},
                )
        await migrations.upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO products (sku, name, description, price, stock, version,"
                    " created_at, updated_at) VALUES ('EMOJI', :name, :name, 1, 1, 1, NOW(), NOW())"
                ),
                {"name": "Dinosaurs \N{GRINNING FACE}"},
            )
            names = (await connection.execute(text("SELECT sku, name FROM products"))).all()
            charsets = set(
                (
                    await connection.execute(
                        text(
                            "SELECT DISTINCT CHARACTER_SET_NAME FROM information_schema.COLUMNS"
                            " WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL"
                            " AND TABLE_NAME <> 'alembic_version'"
                        )
                    )
                ).scalars()
            )
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
        server.stop()
    assert sorted(sku for sku, _ in names) == ["ABC", "EMOJI", "abc"]
    assert ("EMOJI", "Dinosaurs \N{GRINNING FACE}") in names
    assert charsets == {"utf8mb4"}
    assert differences == []


async def test_migration_0007_spells_each_category_one_way_and_counts_them(
    backend: Backend,
) -> None:
    engine = create_engine(backend.settings(), pooled=False)
    spelled = ["Kitchen", "kitchen", " KITCHEN", "Café", unicodedata.normalize("NFD", "Café"), None]
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
        await migrations.downgrade(engine, "0006")
        then = datetime(2026, 1, 1, tzinfo=UTC if backend.name == "postgresql" else None)
        async with engine.begin() as connection:
            for number, category in enumerate(spelled):
                await connection.execute(
                    text(
                        "INSERT INTO products (sku, name, description, price, stock, category,"
                        " version, created_at, updated_at) VALUES"
                        " (:sku, 'Plain', '', 1, 1, :category, 1, :now, :now)"
                    ),
                    {"sku": f"M-{number}", "category": category, "now": then},
                )
        await migrations.upgrade(engine)
        async with engine.connect() as connection:

            async def pairs(sql: str) -> dict[object, object]:
                return dict((await connection.execute(text(sql))).all())

            products = await pairs("SELECT sku, category FROM products")
            versions = await pairs("SELECT sku, version FROM products")
            counts = await pairs("SELECT name, product_count FROM categories")
    finally:
        await migrations.upgrade(engine)
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM categories"))
            await connection.execute(text("DELETE FROM products"))
        await engine.dispose()

    assert products == {
        "M-0": "kitchen", "M-1": "kitchen", "M-2": "kitchen",
        "M-3": "café", "M-4": "café", "M-5": None,
    }  # fmt: skip
    # A product whose category was respelled has a new version (a new ETag).
    assert versions == {"M-0": 2, "M-1": 1, "M-2": 2, "M-3": 2, "M-4": 2, "M-5": 1}
    assert counts == {"kitchen": 3, "café": 2}
