"""Constraint violations are recognised on every dialect, from the real errors."""

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.base import utcnow
from catalog.db.errors import (
    ConstraintKind,
    ConstraintViolation,
    constraint_violation,
    is_unavailable,
)
from catalog.db.session import SessionDep
from catalog.products.models import Product
from tests.helpers import assert_problem


def _row(**overrides: object) -> dict[str, object]:
    now = utcnow()
    row: dict[str, object] = {
        "sku": "ERR-1",
        "name": "n",
        "description": "",
        "price": 1,
        "stock": 1,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    row.update(overrides)
    return row


async def _violation(engine: AsyncEngine, *rows: dict[str, object]) -> ConstraintViolation:
    # DBAPIError, not IntegrityError: MariaDB's driver raises a failed CHECK as an
    # OperationalError.
    with pytest.raises(DBAPIError) as caught:  # noqa: PT012 - the insert and its commit
        async with engine.begin() as connection:
            for row in rows:
                await connection.execute(insert(Product), row)
    violation = constraint_violation(caught.value, engine.dialect.name)
    assert violation is not None, caught.value
    return violation


async def test_duplicate_is_a_unique_violation_on_the_sku_constraint(engine: AsyncEngine) -> None:
    violation = await _violation(engine, _row(), _row())
    assert violation.kind is ConstraintKind.UNIQUE
    assert violation.constraint in ("uq_products_sku", "products.sku")


async def test_negative_stock_is_a_check_violation(engine: AsyncEngine) -> None:
    violation = await _violation(engine, _row(stock=-1))
    assert violation.kind is ConstraintKind.CHECK
    assert violation.constraint is not None
    assert "stock_non_negative" in violation.constraint


async def test_missing_name_is_a_not_null_violation(engine: AsyncEngine) -> None:
    violation = await _violation(engine, _row(name=None))
    assert violation.kind is ConstraintKind.NOT_NULL


async def test_a_violation_that_escapes_the_services_is_a_409_problem(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    @app.post("/test-only/negative-stock")
    async def negative_stock(session: SessionDep) -> None:
        await session.execute(insert(Product), _row(stock=-1))

    body = assert_problem(await client.post("/test-only/negative-stock"), 409)
    assert "check constraint" in body["detail"]


def test_a_postgresql_server_shutting_down_is_unavailable_not_a_bug() -> None:
    # Seen under load while PostgreSQL restarted: a plain DBAPIError, SQLSTATE 57P03.
    cause = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    wrapped = DBAPIError("SELECT 1", {}, Exception(str(cause)))
    wrapped.orig.__cause__ = cause  # type: ignore[union-attr]
    assert is_unavailable(wrapped)
    assert not is_unavailable(DBAPIError("SELECT 1", {}, Exception("syntax error")))


async def test_a_database_error_never_carries_the_values_bound(engine: AsyncEngine) -> None:
    # Values are request data, emails, password hashes: none of them in an error's text,
    # which reaches logs and, from the command line, the terminal.
    marker = "$argon2id$v=19$secret-looking-value"
    with pytest.raises(DBAPIError) as caught:
        async with engine.begin() as connection:
            await connection.execute(insert(Product), [_row(name=marker), _row(name=marker)])
    assert marker not in str(caught.value)
