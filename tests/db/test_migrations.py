"""The migrations build the schema the models describe, and the app checks it at start."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy import Connection

from catalog.config import Settings
from catalog.db.engine import create_engine
from catalog.main import create_app
from catalog.models import Base, migrations
from catalog.startup import StartupCheckError
from tests.conftest import Backend


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
        async with LifespanManager(create_app(settings)):
            pass


async def test_app_refuses_a_database_whose_schema_is_behind(backend: Backend) -> None:
    engine = create_engine(backend.settings(), pooled=False)
    try:
        await migrations.downgrade(engine, "base")
        with pytest.raises(StartupCheckError, match=r"behind.*catalog db upgrade"):
            async with LifespanManager(create_app(backend.settings())):
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
        async with LifespanManager(create_app(settings)):
            pass
