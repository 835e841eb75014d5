"""Alembic, driven from code: upgrade a database, and tell whether its schema is current.

The kit knows no model and no migration script: the application hands it both, as a
`Migrations` (catalog's is `catalog.models.migrations`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Migrations", "SchemaState"]

# SQLAlchemy's inspector lists no triggers.
_SQLITE_TRIGGERS = text(
    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"
)


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


@dataclass(frozen=True)
class Migrations:
    """A directory of Alembic scripts and the metadata of the models they build."""

    script_location: Path
    metadata: MetaData
    # What the scripts create beyond the models, spelled per dialect (full-text search):
    # indexes by dialect name, then table; SQLite triggers by table.
    extra_indexes: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    sqlite_triggers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Names of objects the models do not describe, which model/migration comparisons
    # (autogenerate, the tests) leave out.
    unmodelled: frozenset[str] = frozenset()
    unmodelled_prefixes: tuple[str, ...] = ()

    def is_modelled(self, name: str | None) -> bool:
        """False for the objects the models do not describe (Alembic's include_name)."""
        return name is None or not (
            name in self.unmodelled or name.startswith(self.unmodelled_prefixes)
        )

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic config for these scripts; `connection` runs them on it."""
        config = Config()
        config.set_main_option("script_location", str(self.script_location))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    async def upgrade(self, engine: AsyncEngine, revision: str = "head") -> None:
        """Apply the migrations up to `revision` through `engine`."""
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(self.config(sync), revision))

    async def downgrade(self, engine: AsyncEngine, revision: str) -> None:
        """Revert the migrations down to `revision` ("base": all of them)."""
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(self.config(sync), revision))

    async def state(self, engine: AsyncEngine) -> SchemaState:
        """Compare the database's Alembic revision with the scripts' head."""
        async with engine.connect() as connection:
            return await connection.run_sync(self._state)

    def _state(self, connection: Connection) -> SchemaState:
        script = ScriptDirectory.from_config(self.config())
        current = MigrationContext.configure(connection).get_current_heads()
        return SchemaState(
            current=frozenset(current),
            expected=frozenset(script.get_heads()),
            known=frozenset(revision.revision for revision in script.walk_revisions()),
        )

    async def missing_indexes(self, engine: AsyncEngine) -> list[str]:
        """The indexes (and SQLite triggers) the migrations create that the database
        lacks: a MariaDB bulk load killed midway leaves them dropped (catalog.db.bulk).
        Only meaningful on a schema at the scripts' head."""
        async with engine.connect() as connection:
            return await connection.run_sync(self._missing_indexes)

    def _missing_indexes(self, connection: Connection) -> list[str]:
        dialect = connection.dialect.name
        inspector = inspect(connection)
        extra = self.extra_indexes.get(dialect, {})
        missing = []
        for table in self.metadata.sorted_tables:
            present = {index["name"] for index in inspector.get_indexes(table.name)}
            expected = {str(index.name) for index in table.indexes if index.name is not None}
            expected |= extra.get(table.name, frozenset())
            missing += [f"index {name} on {table.name}" for name in sorted(expected - present)]
        if dialect == "sqlite":
            for table_name, wanted in self.sqlite_triggers.items():
                found = connection.execute(_SQLITE_TRIGGERS, {"table": table_name}).scalars()
                triggers = set(found)
                missing += [f"trigger {name}" for name in sorted(wanted - triggers)]
        return missing
