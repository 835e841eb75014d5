"""Alembic, driven from code: upgrade a database, and tell whether its schema is current."""

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

import catalog
from catalog.models import Base

__all__ = [
    "SEARCH_OBJECTS",
    "SchemaState",
    "alembic_config",
    "downgrade",
    "is_schema_object",
    "migrations_dir",
    "missing_indexes",
    "schema_state",
    "upgrade",
]


# Full-text search objects that each dialect spells its own way (migration 0004); they
# are not in the models, and model/migration comparisons leave them out.
SEARCH_OBJECTS = frozenset(
    {"search_vector", "ix_products_search_vector", "ix_products_fulltext", "products_fts"}
)


def is_schema_object(name: str | None) -> bool:
    """False for the search objects the models do not describe (see SEARCH_OBJECTS)."""
    return name is None or not (name in SEARCH_OBJECTS or name.startswith("products_fts_"))


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the package when installed from a wheel,
    at the top of the source tree otherwise."""
    package_dir = Path(catalog.__file__).resolve().parent
    for candidate in (package_dir / "_migrations", package_dir.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic migrations found next to {package_dir}")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations; `connection` runs them on it."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the migrations up to `revision` through `engine`."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Revert the migrations down to `revision` ("base": all of them)."""
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)


@dataclass(frozen=True)
class SchemaState:
    current: frozenset[str]
    expected: frozenset[str]
    known: frozenset[str]

    @property
    def is_current(self) -> bool:
        return self.current == self.expected

    def problem(self) -> str:
        """What is wrong and what to run, for the operator."""
        shown = ", ".join(sorted(self.current)) or "empty (no migrations applied)"
        wanted = ", ".join(sorted(self.expected))
        if self.current - self.known:
            return (
                f"the database schema is at revision {shown}, which this version of catalog "
                f"does not know (it expects {wanted}): the database was migrated by a newer "
                "release; deploy that release or downgrade the database with it"
            )
        return (
            f"the database schema is behind: it is at {shown}, this version of catalog "
            f"needs {wanted}. Run `catalog db upgrade` with the same CATALOG_DATABASE_URL, "
            "then start the service again"
        )


def _schema_state(connection: Connection) -> SchemaState:
    script = ScriptDirectory.from_config(alembic_config())
    current = MigrationContext.configure(connection).get_current_heads()
    return SchemaState(
        current=frozenset(current),
        expected=frozenset(script.get_heads()),
        known=frozenset(revision.revision for revision in script.walk_revisions()),
    )


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Compare the database's Alembic revision with the code's head."""
    async with engine.connect() as connection:
        return await connection.run_sync(_schema_state)


# What migration 0004 creates for full-text search, per dialect, beyond the models.
_SEARCH_INDEXES = {
    "postgresql": {"ix_products_search_vector"},
    "mysql": {"ix_products_fulltext"},
    "mariadb": {"ix_products_fulltext"},
}
_SQLITE_SEARCH_TRIGGERS = {"products_fts_insert", "products_fts_delete", "products_fts_update"}


def _missing_indexes(connection: Connection) -> list[str]:
    dialect = connection.dialect.name
    inspector = inspect(connection)
    missing = []
    for table in Base.metadata.sorted_tables:
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        expected = {str(index.name) for index in table.indexes if index.name is not None}
        if table.name == "products":
            expected |= _SEARCH_INDEXES.get(dialect, set())
        missing += [f"index {name} on {table.name}" for name in sorted(expected - present)]
    if dialect == "sqlite":
        triggers = set(
            connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'products'"
            ).scalars()
        )
        missing += [f"trigger {name}" for name in sorted(_SQLITE_SEARCH_TRIGGERS - triggers)]
    return missing


async def missing_indexes(engine: AsyncEngine) -> list[str]:
    """The indexes (and SQLite's full-text triggers) the migrations create that the
    database lacks: a MariaDB bulk load killed midway leaves them dropped (catalog.db.bulk).
    Only meaningful on a schema at the code's revision."""
    async with engine.connect() as connection:
        return await connection.run_sync(_missing_indexes)
