"""`catalog import` and `catalog export`: products from and to CSV or NDJSON files.

Both stream: a million-row file is never held in memory. An import validates every row
with the API's own rules and upserts by SKU in batches; an export writes what
GET /products/export serves, so an export imports back exactly (ids aside: they belong
to the target database).
"""

import asyncio
import contextlib
import csv
import enum
import io
import itertools
import json
import re
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.base import utcnow
from catalog.db.bulk import begin_bulk
from catalog.db.session import create_sessionmaker
from catalog.jsonbody import loads as strict_json
from catalog.products import repository
from catalog.products.export import ExportFormat, cell_from_csv, export_chunks, first_chunk
from catalog.products.schemas import IN_WORDS, ProductCreate, name_key
from catalog.schemas import WHOLE_NUMBER, UTCTimestamp, in_words

__all__ = [
    "MAX_LISTED_ERRORS",
    "ImportReport",
    "OnError",
    "RowError",
    "export_file",
    "file_format",
    "from_text",
    "import_file",
]


MAX_IMPORTED_VERSION = 2**30


class OnError(enum.StrEnum):
    ABORT = "abort"  # report every bad row, write nothing
    SKIP = "skip"  # write the good rows, report the bad


class ProductRow(ProductCreate):
    """One row of an import: the API's rules, and the extra columns of an export."""

    # Kept when given, so that export -> import reproduces the products.
    created_at: UTCTimestamp | None = None
    updated_at: UTCTimestamp | None = None
    # Every write adds one to a product's version, a 32-bit column: an imported version
    # leaves room for a billion more (2**31 - 1 was a 500 on the next write).
    version: Annotated[int, Field(ge=1, le=MAX_IMPORTED_VERSION), WHOLE_NUMBER] | None = None
    # The source database's id: ignored, ids belong to the target.
    id: Annotated[int, Field(ge=1, le=2**63 - 1), WHOLE_NUMBER] | None = None

    @model_validator(mode="after")
    def _updated_after_created(self) -> Self:
        if self.created_at and self.updated_at and self.updated_at < self.created_at:
            raise ValueError("updated_at is earlier than created_at")
        return self


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


# Rows not valid that a report lists with their reason; beyond, they are counted only,
# so that a file of a million bad rows costs no more memory than one of a thousand.
MAX_LISTED_ERRORS = 1000


@dataclass
class ImportReport:
    rows: int = 0
    written: int = 0
    # How many rows were not valid; the first MAX_LISTED_ERRORS of them, with why.
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        """Count a row that is not valid, and list it while the list has room."""
        self.invalid += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(RowError(line, reason))


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


# A whole number as a CSV cell or a form field writes it: ASCII digits only (\d, like
# str.isdigit(), also takes "١٢" and "१०"), and no longer than a BIGINT, so that int()
# never sees thousands of digits. Anything else stays text, for the schema to refuse.
_DIGITS = re.compile(r"-?[0-9]{1,19}")


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
                record = strict_json(line)
            except json.JSONDecodeError as error:
                yield number, f"not JSON: {error.msg}"
                continue
            yield number, record if isinstance(record, dict) else "not a JSON object"
        return
    reader = csv.DictReader(handle)
    for row in reader:
        try:
            cells = {
                key: cell_from_csv(value) if isinstance(value, str) else value
                for key, value in row.items()
            }
            yield reader.line_num, from_text(cells)
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
            first = error.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "row"
            yield number, f"{where}: {in_words(first, IN_WORDS)}"


def _values(row: ProductRow) -> dict[str, Any]:
    now = utcnow()
    # A product is not made after its last change: with only updated_at, it is both.
    created = row.created_at or row.updated_at or now
    return {
        "sku": row.sku,
        "name": row.name,
        "name_key": name_key(row.name),
        "description": row.description,
        "price": row.price,
        "stock": row.stock,
        "category": row.category,
        "version": row.version or 1,
        "created_at": created,
        "updated_at": row.updated_at or created,
    }


@dataclass(frozen=True)
class _Read:
    """How far a file has been read at the end of a chunk."""

    rows: int
    bytes: int
    ended: bool


class _Rows:
    """A file's rows, read and validated a chunk at a time in a worker thread: the
    parsing and the API's checks are CPU work that would hold the event loop (2 MiB of
    bad rows held it for seconds), and a chunk at a time keeps memory bounded."""

    def __init__(self, path: Path, file_type: ExportFormat) -> None:
        self._raw = path.open("rb")
        # Text read through the binary file, whose position says how far the import is
        # (a text file's own tell() does not work while it is iterated); utf-8-sig, so
        # that a byte-order mark (Excel writes one) is not read as part of the header.
        self._handle = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        self._rows = _validated(self._handle, file_type)
        # Held while a chunk is read: the file is closed only between chunks.
        self._lock = threading.Lock()

    def chunk(self, size: int, report: ImportReport) -> tuple[list[dict[str, Any]], _Read]:
        """Up to `size` more rows: the valid ones' values, and how far the file has been
        read with them. Rows not valid go into `report`. In a worker thread."""
        valid: list[dict[str, Any]] = []
        with self._lock:
            read = 0
            for number, row in itertools.islice(self._rows, size):
                read += 1
                report.rows += 1
                if isinstance(row, str):
                    report.reject(number, row)
                else:
                    valid.append(_values(row))
            return valid, _Read(report.rows, self._raw.tell(), ended=read < size)

    def close(self) -> None:
        with self._lock:
            self._handle.close()  # and the binary file under it


async def _each_chunk(
    path: Path, file_type: ExportFormat, size: int, report: ImportReport
) -> AsyncGenerator[tuple[list[dict[str, Any]], _Read]]:
    """The file's chunks (valid rows, how far the file was read with them), the next
    one read in a thread while the caller works on this one."""
    rows = _Rows(path, file_type)
    pending = asyncio.ensure_future(asyncio.to_thread(rows.chunk, size, report))
    try:
        while True:
            valid, read = await pending
            if not read.ended:
                pending = asyncio.ensure_future(asyncio.to_thread(rows.chunk, size, report))
            yield valid, read
            if read.ended:
                return
    finally:
        pending.cancel()
        await asyncio.to_thread(rows.close)


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
    row is bad (a first pass only validates, and counts the rows it read). `on_progress
    (rows, bytes)` hears how far the writing pass is, in rows and in bytes of the file
    read. The file is read and checked in a worker thread, `batch_size` rows at a
    time, so the event loop keeps serving while a large file is read."""
    if on_error is OnError.ABORT:
        checked = ImportReport()
        async with contextlib.aclosing(_each_chunk(path, file_type, batch_size, checked)) as rows:
            async for _ in rows:
                pass
        if checked.invalid:
            return checked
    report = ImportReport()
    async with contextlib.aclosing(_each_chunk(path, file_type, batch_size, report)) as chunks:
        async for batch, read in chunks:
            await _write(engine, batch, report)
            if on_progress is not None:  # as far as this batch: the next is being read
                on_progress(read.rows, read.bytes)
    return report


async def _write(engine: AsyncEngine, batch: list[dict[str, Any]], report: ImportReport) -> None:
    if batch:
        async with engine.connect() as connection:
            # SQLite: the write lock first, so that the categories the upsert reads
            # are still those it replaces (repository.upsert).
            await begin_bulk(connection)
            await repository.upsert(connection, batch)
            await connection.commit()
        report.written += len(batch)


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
