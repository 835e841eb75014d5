"""`catalog import` and `catalog export`: products from and to CSV or NDJSON files.

Both stream: a million-row file is never held in memory. An import validates every row
with the API's own rules and upserts by SKU in batches; an export writes what
GET /products/export serves, so an export imports back exactly (ids aside: they belong
to the target database).
"""

import csv
import enum
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.base import utcnow
from catalog.db.bulk import begin_bulk
from catalog.db.session import create_sessionmaker
from catalog.products import repository
from catalog.products.export import ExportFormat, export_chunks, first_chunk
from catalog.products.schemas import ProductCreate
from catalog.schemas import UTCTimestamp

__all__ = [
    "ImportReport",
    "OnError",
    "RowError",
    "export_file",
    "file_format",
    "from_text",
    "import_file",
]


class OnError(enum.StrEnum):
    ABORT = "abort"  # report every bad row, write nothing
    SKIP = "skip"  # write the good rows, report the bad


class ProductRow(ProductCreate):
    """One row of an import: the API's rules, and the extra columns of an export."""

    # Kept when given, so that export -> import reproduces the products.
    created_at: UTCTimestamp | None = None
    updated_at: UTCTimestamp | None = None
    version: int | None = Field(default=None, ge=1)
    # The source database's id: ignored, ids belong to the target.
    id: int | None = None


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    errors: list[RowError] = field(default_factory=list)


def file_format(path: Path, given: ExportFormat | None) -> ExportFormat:
    """The format named, or the one the file's extension says."""
    if given is not None:
        return given
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("ndjson", "jsonl"):
        return ExportFormat.NDJSON
    if suffix == "csv":
        return ExportFormat.CSV
    raise ValueError(f"cannot tell the format of {path.name}: use .csv or .ndjson, or --format")


_DIGITS = re.compile(r"-?\d+")


def from_text(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A product's fields given as text (a CSV row, a form of the staff's pages), as the
    API's schemas take them: whole numbers as numbers, an empty category as none."""
    values: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:  # more fields than the header has
            raise ValueError("more values than columns")
        if value is None:
            continue
        if key in ("stock", "version", "id") and _DIGITS.fullmatch(value):
            values[key] = int(value)
        elif key in ("category", "created_at", "updated_at", "version", "id") and value == "":
            values[key] = None
        else:
            values[key] = value
    return values


def _records(
    handle: IO[str], file_type: ExportFormat
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, raw record or the reason it cannot be read) for each record."""
    if file_type is ExportFormat.NDJSON:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"not JSON: {error.msg}"
                continue
            yield number, record if isinstance(record, dict) else "not a JSON object"
        return
    reader = csv.DictReader(handle)
    for row in reader:
        try:
            yield reader.line_num, from_text(row)
        except ValueError as error:
            yield reader.line_num, str(error)


def _validated(handle: IO[str], file_type: ExportFormat) -> Iterator[tuple[int, ProductRow | str]]:
    for number, record in _records(handle, file_type):
        if isinstance(record, str):
            yield number, record
            continue
        try:
            yield number, ProductRow.model_validate(record)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "row"
            yield number, f"{where}: {first['msg']}"


def _values(row: ProductRow) -> dict[str, Any]:
    now = utcnow()
    created = row.created_at or now
    return {
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "price": row.price,
        "stock": row.stock,
        "category": row.category,
        "version": row.version or 1,
        "created_at": created,
        "updated_at": row.updated_at or created,
    }


async def import_file(
    engine: AsyncEngine,
    path: Path,
    *,
    file_type: ExportFormat,
    on_error: OnError,
    batch_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Validate and upsert the products of `path`; with ABORT nothing is written if any
    row is bad (a first pass only validates). `on_progress(rows, bytes)` hears how far
    the writing pass is, in rows and in bytes of the file read."""
    report = ImportReport()
    if on_error is OnError.ABORT:
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in _validated(handle, file_type):
                if isinstance(row, str):
                    report.errors.append(RowError(number, row))
        if report.errors:
            return report
    batch: list[dict[str, Any]] = []

    async def flush() -> None:
        async with engine.connect() as connection:
            # SQLite: the write lock first, so that the categories the upsert reads
            # are still those it replaces (repository.upsert).
            await begin_bulk(connection)
            await repository.upsert(connection, batch)
            await connection.commit()
        report.written += len(batch)
        batch.clear()

    with path.open("rb") as raw:
        # Text read through the binary file, whose position says how far the import is
        # (a text file's own tell() does not work while it is iterated).
        handle = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        for number, row in _validated(handle, file_type):
            report.rows += 1
            if isinstance(row, str):
                report.errors.append(RowError(number, row))
                continue
            batch.append(_values(row))
            if len(batch) >= batch_size:
                await flush()
                if on_progress is not None:
                    on_progress(report.rows, raw.tell())
        if batch:
            await flush()
        if on_progress is not None:
            on_progress(report.rows, raw.tell())
    return report


async def export_file(
    engine: AsyncEngine,
    path: Path,
    *,
    file_type: ExportFormat,
    chunk_size: int = 1000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write every product to `path`; returns how many."""
    sessionmaker = create_sessionmaker(engine)
    first = await first_chunk(sessionmaker, chunk_size)
    written = 0

    def count(rows: int) -> None:
        nonlocal written
        written += rows
        if on_progress is not None:
            on_progress(written)

    with path.open("wb") as handle:
        async for data in export_chunks(sessionmaker, file_type, first, chunk_size, on_rows=count):
            handle.write(data)
    return written
