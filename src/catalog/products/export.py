"""Every product as NDJSON or CSV, streamed in keyset chunks with a connection per chunk.

A slow client can take minutes to read a large export. The stream therefore never
holds a connection while it waits for the client: each chunk is read in its own short
session, whose connection is back in the pool before the chunk is sent. The export is
not one snapshot: a product is exported at most once, in id order, and products
changed or added while it runs may or may not appear.
"""

import csv
import enum
import io
from collections.abc import AsyncIterator, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog.products import repository
from catalog.products.models import Product
from catalog.products.schemas import ProductRead

__all__ = ["CSV_COLUMNS", "ExportFormat", "cell_from_csv", "export_chunks", "first_chunk"]

CSV_COLUMNS = tuple(ProductRead.model_fields)

# A spreadsheet reads a cell that starts with one of these as a formula (=HYPERLINK(...),
# +cmd|...): OWASP's "CSV injection". The export writes such a cell with a leading
# apostrophe, which spreadsheets show as text; the import takes it off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_formula(text: str) -> bool:
    # Also with apostrophes before it, so that a value that itself starts with "'="
    # is escaped too, and the import gives back exactly what was exported.
    return text.lstrip("'").startswith(_FORMULA_START)


def _cell_to_csv(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and _is_formula(value):
        return "'" + value
    return value


def cell_from_csv(text: str) -> str:
    """A CSV cell as the export escaped it, as it was (the leading apostrophe of a cell
    that would be a formula taken off); any other cell as it is."""
    if text.startswith("'") and _is_formula(text[1:]):
        return text[1:]
    return text


class ExportFormat(enum.StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        return "application/x-ndjson" if self is ExportFormat.NDJSON else "text/csv; charset=utf-8"


async def _read_chunk(
    sessionmaker: async_sessionmaker[AsyncSession], after_id: int, size: int
) -> Sequence[Product]:
    async with sessionmaker() as session:  # the connection goes back when this closes
        return await repository.page_after(session, after_id=after_id, limit=size)


async def first_chunk(
    sessionmaker: async_sessionmaker[AsyncSession], size: int
) -> Sequence[Product]:
    """Read before the response starts, so that a database error is still a 503 problem."""
    return await _read_chunk(sessionmaker, 0, size)


def _render(products: Sequence[Product], export_format: ExportFormat, *, header: bool) -> bytes:
    rows = [ProductRead.model_validate(product) for product in products]
    if export_format is ExportFormat.NDJSON:
        return b"".join(row.model_dump_json().encode() + b"\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = row.model_dump(mode="json")
        writer.writerow(_cell_to_csv(values[column]) for column in CSV_COLUMNS)
    return buffer.getvalue().encode()


async def export_chunks(
    sessionmaker: async_sessionmaker[AsyncSession],
    export_format: ExportFormat,
    first: Sequence[Product],
    size: int,
    on_rows: Callable[[int], None] | None = None,
) -> AsyncIterator[bytes]:
    """The rendered export, chunk after chunk, starting with `first`."""
    chunk, header = first, True
    while True:
        if on_rows is not None:
            on_rows(len(chunk))
        yield _render(chunk, export_format, header=header)
        if len(chunk) < size:
            return
        chunk, header = await _read_chunk(sessionmaker, chunk[-1].id, size), False
