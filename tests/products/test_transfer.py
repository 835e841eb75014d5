"""catalog import / export: the API's rules for every row, upsert by SKU, exact round trips."""

import csv
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.products.export import ExportFormat
from catalog.products.seed import seed_products
from catalog.products.transfer import OnError, export_file, import_file
from tests.conftest import clean_tables
from tests.helpers import product_payload


def _without_ids(path: Path, file_type: ExportFormat) -> list[dict[str, object]]:
    with path.open(newline="", encoding="utf-8") as handle:
        if file_type is ExportFormat.NDJSON:
            rows = [json.loads(line) for line in handle]
        else:
            rows = list(csv.DictReader(handle))
    return [{key: value for key, value in row.items() if key != "id"} for row in rows]


@pytest.mark.parametrize("file_type", [ExportFormat.NDJSON, ExportFormat.CSV])
async def test_export_then_import_round_trips_exactly(
    engine: AsyncEngine, client: httpx.AsyncClient, tmp_path: Path, file_type: ExportFormat
) -> None:
    await seed_products(engine, count=250, seed=11)
    # Text that CSV and JSON must both carry: quotes, commas, line breaks, accents.
    await client.post(
        "/products",
        json=product_payload(
            "ODD-1", name='Café "Ø", deluxe', description='line one\nline two, "quoted"'
        ),
    )
    first = tmp_path / f"first.{file_type}"
    second = tmp_path / f"second.{file_type}"
    assert await export_file(engine, first, file_type=file_type, chunk_size=64) == 251

    await clean_tables(engine)
    report = await import_file(engine, first, file_type=file_type, on_error=OnError.ABORT)
    assert report.errors == []
    assert report.written == 251
    await export_file(engine, second, file_type=file_type)

    assert _without_ids(second, file_type) == _without_ids(first, file_type)


async def test_a_bad_file_is_reported_line_by_line_and_nothing_is_written(
    engine: AsyncEngine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    lines = [
        json.dumps(product_payload("GOOD-1")),
        json.dumps(product_payload("BAD-1", price="1e400")),
        "{not json",
        json.dumps(product_payload("GOOD-2")),
        json.dumps(product_payload("BAD-2", name="nul\x00byte")),
        json.dumps({"name": "no sku", "price": "1.00"}),
        json.dumps(product_payload("BAD-3", stock=-1)),
    ]
    path = tmp_path / "products.ndjson"
    path.write_text("\n".join(lines) + "\n")

    report = await import_file(engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.ABORT)

    assert [error.line for error in report.errors] == [2, 3, 5, 6, 7]
    assert "price" in report.errors[0].reason
    assert "sku" in report.errors[3].reason
    assert report.written == 0
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0

    skipped = await import_file(engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.SKIP)
    assert skipped.written == 2
    assert len(skipped.errors) == 5
    listing = (await client.get("/products")).json()["items"]
    assert {item["sku"] for item in listing} == {"GOOD-1", "GOOD-2"}


async def test_import_updates_products_with_the_same_sku(
    engine: AsyncEngine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    existing = (await client.post("/products", json=product_payload("SAME-1", stock=1))).json()
    path = tmp_path / "update.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "name", "price", "stock", "category"])
        writer.writerow(["SAME-1", "Renamed", "3.00", "7", ""])
        writer.writerow(["NEW-1", "Brand new", "4.50", "2", "toys"])

    report = await import_file(engine, path, file_type=ExportFormat.CSV, on_error=OnError.ABORT)

    assert report.errors == []
    updated = (await client.get(f"/products/{existing['id']}")).json()
    assert (updated["name"], updated["stock"], updated["price"], updated["category"]) == (
        "Renamed",
        7,
        "3.00",
        None,
    )
    assert updated["version"] == 2
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 2
