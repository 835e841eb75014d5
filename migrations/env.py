"""Alembic environment: runs on a connection handed over by catalog, or on its own engine."""

import asyncio

from alembic import context
from sqlalchemy import Connection

from catalog.config import get_settings
from catalog.db.engine import create_engine
from catalog.models import Base, migrations

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Autogenerate must not drop the per-dialect search objects of migration 0004.
        include_name=lambda name, _type, _parents: migrations.is_modelled(name),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_engine(get_settings(), pooled=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")

connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
