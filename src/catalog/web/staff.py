"""The staff's pages (admin accounts): the products, with search, create, edit and
delete, and import from a file.

Each change goes through the products' service, as the API's does: an edit carries the
version the form was made from and is applied only to that version (the API's If-Match);
when someone else saved the product meanwhile, the staff member sees both versions and
chooses, and nothing is overwritten behind their back.
"""

import asyncio
import csv
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import pydantic
from anyio import to_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import UploadFile as StarletteUploadFile

from catalog.config import SettingsDep
from catalog.consistency import ReplicaReaderDep
from catalog.db.session import EngineDep, ReaderDep, SessionDep
from catalog.errors import ConflictError, ForbiddenError, PreconditionFailedError, ValidationError
from catalog.products import service as product_service
from catalog.products import transfer
from catalog.products.router import ProductId
from catalog.products.schemas import (
    IN_WORDS,
    ProductCreate,
    ProductQuery,
    ProductRead,
    ProductSort,
    ProductUpdate,
)
from catalog.users.models import Role, User
from catalog.web.pages import (
    PageRoute,
    Redirect,
    ShowPage,
    decimal_point,
    mistakes,
    redirect,
    render,
    render_fragment,
    stream,
)
from catalog.web.visitors import CsrfChecked, PageUser, VisitorDep, check_csrf, csrf_token

__all__ = ["IMPORT_PATH", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/staff", route_class=PageRoute, include_in_schema=False)

_EDITABLE = ("sku", "name", "description", "price", "stock", "category")
_LABELS = {
    "sku": "SKU",
    "name": "Name",
    "description": "Description",
    "price": "Price",
    "stock": "Stock",
    "category": "Category",
}


_NOT_STAFF = "These pages are for the shop's staff (an admin account)."


async def _staff(user: PageUser) -> User:
    # The role is read from the database, as the API's AdminUser reads it.
    if user.role != Role.ADMIN:
        raise ForbiddenError(_NOT_STAFF)
    return user


Staff = Annotated[User, Depends(_staff)]


async def _staff_by_reader(request: Request, visitor: VisitorDep) -> None:
    # The same check with the role the visitor's session check read (one statement on a
    # connection borrowed for it alone): no session and no transaction (three round
    # trips) for the pages that only read, and the import reads its upload (up to
    # CATALOG_MAX_IMPORT_BYTES) with no connection held.
    if visitor.user_id is None:
        here = request.url.path.removeprefix(request.scope.get("root_path", ""))
        raise Redirect("/signin", {"next": here})
    if not visitor.staff:
        raise ForbiddenError(_NOT_STAFF)


# The staff's pages that only read: checked as Staff is, by the Reader.
StaffReading = Annotated[None, Depends(_staff_by_reader)]


Text = Annotated[str, Form(max_length=20_000)]


_LIST_PATH = "/staff/products"


def _back(back: str | None) -> str:
    """Where to go after a save or a delete: the list as the staff member left it (its
    search, order and page), never another site or page."""
    if back is None or (not back.startswith(f"{_LIST_PATH}?") and back != _LIST_PATH):
        return _LIST_PATH
    return back


def _back_to(request: Request, back: str, note: dict[str, str]) -> Response:
    path, _, query = back.partition("?")
    kept = {k: v for k, v in parse_qsl(query) if k not in ("saved", "kept", "deleted")}
    return redirect(request, path, {**kept, **note})


Back = Annotated[str | None, Form(max_length=2_000)]


async def _entered(
    sku: Text = "",
    name: Text = "",
    description: Text = "",
    price: Text = "",
    stock: Text = "",
    category: Text = "",
) -> dict[str, str]:
    return {
        "sku": sku,
        "name": name,
        "description": description,
        "price": price,
        "stock": stock,
        "category": category,
    }


# What the product form sent, as text: shown again as typed when it is not valid.
Entered = Annotated[dict[str, str], Depends(_entered)]

OpenedText = Annotated[str | None, Form(max_length=20_000)]


async def _opened(
    opened_sku: OpenedText = None,
    opened_name: OpenedText = None,
    opened_description: OpenedText = None,
    opened_price: OpenedText = None,
    opened_stock: OpenedText = None,
    opened_category: OpenedText = None,
) -> dict[str, str] | None:
    values = {
        "sku": opened_sku,
        "name": opened_name,
        "description": opened_description,
        "price": opened_price,
        "stock": opened_stock,
        "category": opened_category,
    }
    if any(value is None for value in values.values()):
        return None
    return {name: value for name, value in values.items() if value is not None}


# The product as the form showed it when it was opened (hidden fields): the base of a
# three-way merge with a version saved meanwhile. None from a form without them.
Opened = Annotated[dict[str, str] | None, Depends(_opened)]
_Model = TypeVar("_Model", ProductCreate, ProductUpdate)


def _as_text(product: ProductRead) -> dict[str, str]:
    """The product's fields as its form shows them."""
    values = {name: getattr(product, name) for name in _EDITABLE}
    return {name: "" if value is None else str(value) for name, value in values.items()}


@router.get("/products", response_class=HTMLResponse)
async def products(
    request: Request,
    staff: StaffReading,
    reader: ReplicaReaderDep,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    sort: Annotated[ProductSort | None, Query()] = None,
    saved: Annotated[int | None, Query(ge=1)] = None,
    kept: Annotated[str, Query(max_length=200)] = "",
    deleted: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The products, newest first, or those a search finds (the product whose SKU it is
    first), in the order of the column chosen; a page at a time. After a save, which
    fields someone else had changed meanwhile (`kept`, as they saved them)."""
    try:
        query = ProductQuery.model_validate(
            {
                "q": q or None,
                "cursor": cursor,
                "sort": sort or (None if q else "-id"),
                "limit": 50,
            }
        )
    except pydantic.ValidationError as error:  # a search with a control character, say
        raise RequestValidationError(error.errors(include_url=False)) from None
    page = await product_service.list_products(reader=reader, settings=settings, query=query)
    by_sku = await product_service.find_by_sku(reader=reader, text=q) if q and not cursor else None
    listed = {name: value for name, value in (("q", q), ("sort", sort)) if value}
    # This list as it is, for the edit and delete pages to come back to (no root path:
    # redirect() adds it).
    shown = {**listed, **({"cursor": cursor} if cursor else {})}
    here = f"{_LIST_PATH}?{urlencode(shown)}" if shown else _LIST_PATH
    context = {
        "q": q,
        "sort": query.order.value,
        "listed": listed,
        "by_sku": by_sku,
        "back": here,
        # Once, not once a row: the edit links of the fifty rows all carry it.
        "back_query": urlencode({"back": here}),
        "page": page,
        "saved": saved,
        "kept": [_LABELS[name].lower() for name in kept.split(",") if name in _LABELS],
        "deleted": deleted,
        "csrf": csrf_token(request, settings),
    }
    return render(request, "staff/products.html", context)


def _product_form(
    request: Request, settings: SettingsDep, values: dict[str, str], **context: Any
) -> dict[str, Any]:
    return {
        "values": values,
        "opened": None,
        "labels": _LABELS,
        "mistakes": [],
        "csrf": csrf_token(request, settings),
        **context,
    }


def _read(
    model: type[_Model], entered: dict[str, str], context: dict[str, Any], locale: str
) -> _Model:
    """The form's text read by the API's own schema (a price also with the locale's
    decimal comma), or the form shown again (422)."""
    typed = {**entered, "price": decimal_point(entered["price"], locale)}
    try:
        return model.model_validate(transfer.from_text(typed))
    except (pydantic.ValidationError, ValueError) as error:
        context["mistakes"] = mistakes(error, _LABELS, IN_WORDS)
        raise ShowPage("staff/edit.html", context, status_code=422) from None


@router.get("/products/new", response_class=HTMLResponse)
async def new_product(request: Request, staff: StaffReading, settings: SettingsDep) -> Response:
    """An empty product form."""
    values = dict.fromkeys(_EDITABLE, "") | {"stock": "0"}
    context = _product_form(request, settings, values, product=None)
    return render(request, "staff/edit.html", context)


@router.post("/products/new", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def create_product(
    request: Request, staff: Staff, session: SessionDep, settings: SettingsDep, entered: Entered
) -> Response:
    """Create the product as `POST /products` does."""
    context = _product_form(request, settings, entered, product=None)
    data = _read(ProductCreate, entered, context, settings.locale)
    try:
        product = await product_service.create(session=session, data=data)
    except ConflictError as error:
        context["problem"] = error.detail
        raise ShowPage("staff/edit.html", context, status_code=409) from None
    return redirect(request, "/staff/products", {"saved": str(product.id)})


@router.get("/products/{product_id}", response_class=HTMLResponse)
async def edit_product(
    request: Request,
    product_id: ProductId,
    staff: StaffReading,
    reader: ReaderDep,
    settings: SettingsDep,
    back: Annotated[str | None, Query(max_length=2_000)] = None,
) -> Response:
    """The product's form, with the version it shows (read from the primary: a replica's
    older version would only make the save merge with the newer one)."""
    product = await product_service.read(reader=reader, product_id=product_id)
    values = _as_text(product)
    context = _product_form(
        request, settings, values, product=product, opened=values, back=_back(back)
    )
    return render(request, "staff/edit.html", context)


@router.post("/products/{product_id}", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def save_product(
    request: Request,
    product_id: ProductId,
    staff: Staff,
    session: SessionDep,
    settings: SettingsDep,
    version: Annotated[int, Form(ge=1, le=2**31 - 1)],
    entered: Entered,
    opened: Opened,
    back: Back = None,
) -> Response:
    """Save the fields this form changed, merged with any version saved since it was
    opened: a field only the other editor changed keeps their value, and only a field
    both changed differently is shown for a choice (as a 412). The write itself is
    `PATCH /products/{id}` with If-Match, so a save in between is never overwritten."""
    saved = await product_service.get(session=session, product_id=product_id)
    context = _product_form(
        request, settings, entered, product=saved, version=version, opened=opened, back=_back(back)
    )
    mine = _read(ProductUpdate, entered, context, settings.locale)
    base = _opened_version(opened)
    if base is None and saved.version == version:
        base = _opened_version(_as_text(saved))  # an older form: nothing saved since
    merged = product_service.merge(opened=base, mine=mine, saved=saved)
    if merged.conflicts:
        conflict = _conflict(request, settings, entered, saved, version, merged, opened)
        raise ShowPage("staff/conflict.html", {**conflict, "back": _back(back)}, status_code=412)
    try:
        await product_service.update(
            session=session,
            product_id=product_id,
            data=ProductUpdate.model_validate(merged.changes),
            if_match=f'"{saved.version}"',
        )
    except PreconditionFailedError:  # saved again in the instant between: choose again
        theirs = await product_service.get(session=session, product_id=product_id)
        again = product_service.merge(opened=base, mine=mine, saved=theirs)
        conflict = _conflict(request, settings, entered, theirs, version, again, opened)
        raise ShowPage(
            "staff/conflict.html", {**conflict, "back": _back(back)}, status_code=412
        ) from None
    except ConflictError as error:
        context["problem"] = error.detail
        raise ShowPage("staff/edit.html", context, status_code=409) from None
    note = {"saved": str(product_id)}
    if merged.kept:
        note["kept"] = ",".join(merged.kept)
    return _back_to(request, _back(back), note)


def _opened_version(opened: dict[str, str] | None) -> ProductUpdate | None:
    """The opened form's values, read as the form's own; None when there are none (or
    they are not a product's, which only a hand-made form sends)."""
    if opened is None:
        return None
    try:
        return ProductUpdate.model_validate(transfer.from_text(opened))
    except (pydantic.ValidationError, ValueError):
        return None


def _conflict(
    request: Request,
    settings: SettingsDep,
    mine: dict[str, str],
    theirs: ProductRead,
    version: int,
    merged: product_service.Merge,
    opened: dict[str, str] | None,
) -> dict[str, Any]:
    saved = _as_text(theirs)
    # What the next save sends for each field that is not a conflict: this editor's
    # change where only they made one, else what is saved.
    result = {
        name: mine[name] if name in merged.changes else saved[name]
        for name in _EDITABLE
        if name not in merged.conflicts
    }
    return {
        "mine": mine,
        "theirs": saved,
        "opened": opened,
        "result": result,
        "product": theirs,
        "my_version": version,
        "labels": _LABELS,
        "conflicts": merged.conflicts,
        "kept": merged.kept,
        "changes": list(merged.changes),
        "csrf": csrf_token(request, settings),
    }


@router.get("/products/{product_id}/delete", response_class=HTMLResponse)
async def confirm_delete(
    request: Request,
    product_id: ProductId,
    staff: StaffReading,
    reader: ReaderDep,
    settings: SettingsDep,
    back: Annotated[str | None, Query(max_length=2_000)] = None,
) -> Response:
    """Ask before deleting: the product as it is now, and the button that deletes it."""
    product = await product_service.read(reader=reader, product_id=product_id)
    context = {"product": product, "back": _back(back), "csrf": csrf_token(request, settings)}
    return render(request, "staff/delete.html", context)


@router.post(
    "/products/{product_id}/delete", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def delete_product(
    request: Request,
    product_id: ProductId,
    staff: Staff,
    session: SessionDep,
    reader: ReaderDep,
    settings: SettingsDep,
    version: Annotated[int, Form(ge=1, le=2**31 - 1)],
    back: Back = None,
) -> Response:
    """Delete the product at the version shown, as `DELETE /products/{id}` with If-Match.
    A product that has been ordered stays (its orders name it): the page says so and
    offers to set its stock to 0 instead."""
    try:
        await product_service.delete(
            session=session, product_id=product_id, if_match=f'"{version}"'
        )
    except ConflictError as error:
        # Read by the Reader: PostgreSQL has aborted the session's transaction at the
        # refused DELETE, and it rolls back when the page is answered.
        product = await product_service.read(reader=reader, product_id=product_id)
        values = _as_text(product)
        context = {
            "product": product,
            "problem": error.detail,
            "values": {**values, "stock": "0"},
            "opened": values,
            "back": _back(back),
            "csrf": csrf_token(request, settings),
        }
        raise ShowPage("staff/ordered.html", context, status_code=409) from None
    return _back_to(request, _back(back), {"deleted": str(product_id)})


IMPORT_PATH = "/staff/import"


@router.get("/import", response_class=HTMLResponse)
async def import_form(request: Request, staff: StaffReading, settings: SettingsDep) -> Response:
    """The import form: a file, and what to do with rows that are not valid."""
    context = {
        "csrf": csrf_token(request, settings),
        "max_mib": settings.max_import_bytes // 2**20,
    }
    return render(request, "staff/import.html", context)


_PROGRESS_HERE = "<!-- progress -->"


_NOT_VALID = ValidationError(
    "The form is not valid: send a file, and skip or abort for the rows not valid.",
    errors=[{"loc": ["form"], "msg": "a file and on_error are needed", "type": "form"}],
)


@router.post("/import", response_class=HTMLResponse)
async def import_upload(
    request: Request,
    staff: StaffReading,
    visitor: VisitorDep,
    settings: SettingsDep,
    engine: EngineDep,
) -> Response:
    """Import the file as `catalog import` does, batch by batch, and show how far it
    is as it goes: the page streams, each batch adds a progress bar (the stylesheet
    shows the newest), then the report of the rows that were not valid.

    The form is read here, once the account is known to be staff's: declared as
    parameters, FastAPI would read the whole upload (up to CATALOG_MAX_IMPORT_BYTES)
    before any check, for anyone who sends one."""
    async with request.form(max_files=1, max_fields=5) as form:
        token, file, chosen = form.get("csrf_token"), form.get("file"), form.get("on_error")
        check_csrf(request, settings, visitor, token if isinstance(token, str) else "")
        if not isinstance(file, StarletteUploadFile) or chosen not in (*transfer.OnError, None):
            raise _NOT_VALID
        on_error = transfer.OnError(chosen) if isinstance(chosen, str) else transfer.OnError.SKIP
        return await _import(request, engine, file, on_error)


async def _import(
    request: Request, engine: AsyncEngine, file: StarletteUploadFile, on_error: transfer.OnError
) -> Response:
    name = Path(file.filename or "upload").name
    try:
        file_type = transfer.file_format(Path(name), None)
    except ValueError as error:
        raise ValidationError(
            f"{error}.",
            errors=[{"loc": ["form", "file"], "msg": str(error), "type": "file_format"}],
        ) from None
    folder = tempfile.TemporaryDirectory(prefix="catalog-import-")
    path = Path(folder.name) / f"upload.{file_type.value}"
    # The upload is on disk or in memory already (Starlette spools it): a copy in a
    # thread, so that the event loop never waits on the disk.
    await to_thread.run_sync(_save, file.file, path)
    size = max(path.stat().st_size, 1)
    page = render_fragment(request, "staff/importing.html", {"filename": name})
    head, tail = page.split(_PROGRESS_HERE)

    async def chunks() -> AsyncIterator[str]:
        steps: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        work = asyncio.create_task(
            transfer.import_file(
                engine,
                path,
                file_type=file_type,
                on_error=on_error,
                on_progress=lambda rows, done: steps.put_nowait((rows, done)),
            )
        )
        try:
            yield head
            step = rows = 0
            while not work.done() or not steps.empty():
                waiter = asyncio.ensure_future(steps.get())
                await asyncio.wait({waiter, work}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    continue
                rows, done = waiter.result()
                step += 1
                yield render_fragment(
                    request,
                    "staff/_import_step.html",
                    {"step": step, "rows": rows, "percent": min(100, done * 100 // size)},
                )
            failed, report = None, transfer.ImportReport()
            try:
                report = work.result()
            except (UnicodeDecodeError, csv.Error, RecursionError) as error:
                failed = (
                    f"The file could not be read to its end ({_unreadable(error)}); "
                    f"the rows up to row {rows} were imported."
                )
            except Exception as error:  # the database went away mid-import, say
                logger.exception("import of %s failed after row %d", name, rows)
                failed = f"The import failed after row {rows}: {error.__class__.__name__}."
            aborted = on_error is transfer.OnError.ABORT and bool(report.invalid)
            yield render_fragment(
                request,
                "staff/_import_report.html",
                {"report": report, "failed": failed, "aborted": aborted},
            )
            yield tail
        finally:
            work.cancel()
            folder.cleanup()

    return stream(request, chunks())


def _unreadable(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(error, RecursionError):
        return "a record is nested too deeply"
    return str(error)


def _save(source: Any, path: Path) -> None:
    source.seek(0)
    with path.open("wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
