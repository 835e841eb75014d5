"""Declarative base with a naming convention, portable column types and shared mixins."""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData, Numeric, String
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "Base",
    "BigIntPrimaryKey",
    "CodePointString",
    "ExactString",
    "Money",
    "TimestampMixin",
    "UTCDateTime",
    "utcnow",
]

# Stable, predictable constraint names: migrations can refer to them and the integrity
# error translator can recognise them on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, bound with isoformat: the same text as SQLAlchemy's own
    format ("2024-05-01 12:00:00.000000") at a fraction of the cost per value."""

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], str | None]:
        def process(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(" ", "microseconds")

        return process


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the zone itself; SQLite and MariaDB/MySQL store a naive value,
    which this type writes as UTC and reads back with UTC attached.
    """

    impl = (
        DateTime(timezone=True)
        .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
        .with_variant(_SQLiteDateTime(), "sqlite")  # type: ignore[no-untyped-call]
    )
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact amount with two decimal places and `precision` digits in all.

    NUMERIC(precision, 2) where the database has exact decimals. SQLite has none (it
    would store a float), so there the amount is stored as an integer number of cents,
    which still sorts, compares and sums exactly (up to 18 digits: a 64-bit integer).
    """

    impl = Numeric(12, 2)
    cache_ok = True
    _CENT = Decimal("0.01")

    def __init__(self, precision: int = 12) -> None:
        super().__init__()
        self.precision = precision

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(self._CENT)
        return int(value * 100) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(self._CENT)
        return Decimal(value).quantize(self._CENT)


def CodePointString(length: int) -> TypeEngine[str]:  # noqa: N802 - reads as a type
    """VARCHAR(length) that sorts by Unicode code point on every database: PostgreSQL's
    "C" collation (bytes of UTF-8, which is code point order), MariaDB/MySQL's
    utf8mb4_bin, SQLite's BINARY. For keys that must order the same everywhere
    (products.name_key); each database's own collation orders text its own way."""
    return (
        String(length)
        .with_variant(postgresql.VARCHAR(length, collation="C"), "postgresql")
        .with_variant(
            mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
        )
    )


def ExactString(length: int) -> TypeEngine[str]:  # noqa: N802 - reads as a type
    """VARCHAR(length) compared exactly, code point for code point, on every database.

    PostgreSQL and SQLite compare strings exactly already; MariaDB/MySQL's default
    collations ignore case and accents, so `Renee@` would find `renée@` there and
    nowhere else. The binary collation makes MariaDB/MySQL agree with the others. (It
    pads trailing spaces; the values stored in such columns have none.)
    """
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


# 64-bit ids, except on SQLite where only INTEGER PRIMARY KEY autoincrements (it is
# 64-bit there anyway).
BigIntPrimaryKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Base class of every model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at(context: DefaultExecutionContext) -> datetime:
    # A new row's updated_at is exactly its created_at, not a microsecond later.
    created_at = context.get_current_parameters().get("created_at")  # type: ignore[no-untyped-call]
    return created_at if isinstance(created_at, datetime) else utcnow()


class TimestampMixin:
    """`created_at` and `updated_at`, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=_created_at, onupdate=utcnow
    )
