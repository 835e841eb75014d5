"""catalog import / export: the API's rules for every row, upsert by SKU, exact round trips."""

import csv
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.products import transfer
from catalog.products.export import ExportFormat
from catalog.products.seed import seed_products
from catalog.products.transfer import MAX_LISTED_ERRORS, OnError, export_file, import_file
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


async def test_an_aborted_import_says_how_many_rows_it_read(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    rows = [product_payload("A-1"), product_payload("A-2", price="x"), product_payload("A-3")]
    path = tmp_path / "aborted.ndjson"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    report = await import_file(engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.ABORT)

    assert (report.rows, report.invalid, report.written) == (3, 1, 0)


async def test_a_csv_with_a_byte_order_mark_imports(
    engine: AsyncEngine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    # As Excel saves "CSV UTF-8": a byte-order mark before the header.
    path.write_bytes(
        "\ufeffsku,name,price,stock,category\r\nBOM-1,Crème pot,3.00,2,kitchen\r\n".encode()
    )

    report = await import_file(engine, path, file_type=ExportFormat.CSV, on_error=OnError.ABORT)

    assert (report.errors, report.written) == ([], 1)
    listed = (await client.get("/products")).json()["items"]
    assert [(item["sku"], item["name"]) for item in listed] == [("BOM-1", "Crème pot")]


_FORMULAS = ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "'=already"]


async def test_a_csv_export_escapes_formula_cells_and_the_import_reads_them_back(
    engine: AsyncEngine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    for number, text in enumerate(_FORMULAS):
        made = await client.post(
            "/products", json=product_payload(f"F-{number}", name=text, description=text)
        )
        assert made.status_code == 201, made.text
    await client.post("/products", json=product_payload("PLAIN-1", name="It's plain"))
    path = tmp_path / "formulas.csv"
    await export_file(engine, path, file_type=ExportFormat.CSV)

    with path.open(newline="", encoding="utf-8") as handle:
        cells = {row["sku"]: (row["name"], row["description"]) for row in csv.DictReader(handle)}
    # What a spreadsheet opens: no cell starts a formula, the plain one is untouched.
    for number, text in enumerate(_FORMULAS):
        assert cells[f"F-{number}"] == ("'" + text, "'" + text)
    assert cells["PLAIN-1"][0] == "It's plain"

    await clean_tables(engine)
    report = await import_file(engine, path, file_type=ExportFormat.CSV, on_error=OnError.ABORT)
    assert report.errors == []
    listed = (await client.get("/products", params={"limit": 50})).json()["items"]
    names = {item["sku"]: (item["name"], item["description"]) for item in listed}
    assert names == {
        **{f"F-{number}": (text, text) for number, text in enumerate(_FORMULAS)},
        "PLAIN-1": ("It's plain", "Every dinosaur, drawn to scale."),
    }


@pytest.mark.parametrize(
    ("field", "written", "reason"),
    [
        # Each value as the file writes it: JSON text in NDJSON, the cell in CSV.
        ("version", "2147483647", "version"),
        ("version", str(2**30 + 1), "version"),
        ("stock", '"١٢"', "stock"),
        ("stock", '"१०"', "stock"),
        ("stock", "99.99999999999999999", "stock"),
        ("id", "9" * 5000, "id"),
        ("updated_at", '"2000-01-01T00:00:00Z"', "earlier"),
    ],
    ids=lambda value: value[:24] if isinstance(value, str) else value,
)
@pytest.mark.parametrize("file_type", [ExportFormat.NDJSON, ExportFormat.CSV])
async def test_imported_fields_are_bounded_as_the_api_bounds_them(
    engine: AsyncEngine,
    tmp_path: Path,
    field: str,
    written: str,
    reason: str,
    file_type: ExportFormat,
) -> None:
    record = {**product_payload("BOUND-1"), "created_at": "2024-01-02T00:00:00Z", field: None}
    path = tmp_path / f"bounded.{file_type}"
    if file_type is ExportFormat.NDJSON:
        path.write_text(
            json.dumps(record).replace(f'"{field}": null', f'"{field}": {written}') + "\n"
        )
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(record))
            writer.writeheader()
            writer.writerow({**record, field: written.strip('"')})

    report = await import_file(engine, path, file_type=file_type, on_error=OnError.ABORT)

    assert report.written == 0
    assert len(report.errors) == 1, report.errors
    assert reason in report.errors[0].reason


async def test_an_import_with_only_updated_at_was_made_then(
    engine: AsyncEngine, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "updated.ndjson"
    path.write_text(
        json.dumps({**product_payload("UPD-1"), "updated_at": "2020-05-01T00:00:00Z"}) + "\n"
    )
    report = await import_file(engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.ABORT)
    assert report.errors == []
    item = (await client.get("/products")).json()["items"][0]
    assert item["created_at"] == item["updated_at"]
    assert item["created_at"].startswith("2020-05-01T00:00:00")


async def test_a_file_of_bad_rows_is_counted_whole_and_listed_up_to_a_bound(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "bad.ndjson"
    bad = MAX_LISTED_ERRORS + 500
    path.write_text(
        "".join(json.dumps(product_payload(f"B-{n}", price="x")) + "\n" for n in range(bad))
    )

    report = await import_file(
        engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.SKIP, batch_size=300
    )

    assert (report.rows, report.invalid, report.written) == (bad, bad, 0)
    assert len(report.errors) == MAX_LISTED_ERRORS
    assert report.errors[-1].line == MAX_LISTED_ERRORS


async def test_the_file_is_read_and_checked_off_the_event_loop(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    chunk = transfer._Rows.chunk

    def recorded(self: transfer._Rows, *args: Any) -> Any:
        threads.add(threading.current_thread().name)
        return chunk(self, *args)

    monkeypatch.setattr(transfer._Rows, "chunk", recorded)
    path = tmp_path / "some.ndjson"
    path.write_text("".join(json.dumps(product_payload(f"T-{n}")) + "\n" for n in range(50)))

    report = await import_file(
        engine, path, file_type=ExportFormat.NDJSON, on_error=OnError.ABORT, batch_size=10
    )

    assert report.written == 50
    assert threads
    assert threading.main_thread().name not in threads
