"""The `catalog` command: serve, db upgrade, seed."""

import asyncio
import contextlib
import logging
import logging.config
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar
from urllib.parse import urlsplit, urlunsplit

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

import catalog
from catalog.config import Settings, get_settings
from catalog.db.engine import behind_transaction_pooler, create_engine
from catalog.db.migrations import SchemaState
from catalog.db.pooler import PoolerError, PoolerFacts
from catalog.db.server import ServerFacts, server_facts
from catalog.db.session import create_sessionmaker
from catalog.errors import ConflictError
from catalog.logs import logging_config
from catalog.models import migrations
from catalog.products import repository as products_repository
from catalog.products import seed as product_seed
from catalog.products import transfer
from catalog.products.export import ExportFormat
from catalog.products.transfer import OnError
from catalog.serving import BoundedHttpToolsProtocol
from catalog.startup import budget_of, pooler_of, replica_status, timeout_advice
from catalog.users import service as user_service
from catalog.users.models import Role
from catalog.users.schemas import UserCreate
from catalog.users.security import PasswordHasher

__all__ = ["app"]

app = typer.Typer(help="Product catalog and ordering API.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)
logger = logging.getLogger(__name__)

T = TypeVar("T")


def _print_version(value: bool) -> None:
    if value:
        console.print(f"catalog {catalog.__version__}", highlight=False)
        raise typer.Exit()


# Variables of the test suite and the benchmarks, read by them, not by the service.
_TOOLING_VARIABLES = ("CATALOG_TEST_", "CATALOG_SCHEMATHESIS_")


def _unknown_variables() -> list[str]:
    known = {f"CATALOG_{name.upper()}" for name in Settings.model_fields}
    return sorted(
        name
        for name in os.environ
        if name.upper().startswith("CATALOG_")
        and name.upper() not in known
        and not name.upper().startswith(_TOOLING_VARIABLES)
    )


@app.callback()
def _check_settings(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    # A misspelt variable would otherwise be ignored in silence.
    for name in _unknown_variables():
        console.print(f"[yellow]warning[/yellow]: {name} is not a catalog setting; ignored")
    # Settings that cannot be used are one line each, not a traceback.
    try:
        settings = get_settings()
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]).upper()
            message = problem["msg"].removeprefix("Value error, ")
            console.print(f"[red]settings[/red]: {f'CATALOG_{where}: ' if where else ''}{message}")
        raise typer.Exit(2) from None
    if settings.signing_secret_source.endswith("(created now)"):
        console.print(f"generated a random key to sign tokens: {settings.signing_secret_source}")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _database_label() -> str:
    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def _with_engine(work: Callable[[AsyncEngine], Awaitable[T]], *, needs_schema: bool = True) -> T:
    """Run `work` on a pool-less engine for the configured database, then dispose of it.

    With `needs_schema`, a database whose schema is not the code's is one line that says
    what to run, before any work; a database error is one line too, never a traceback
    (the engine hides bound parameters, so no value, hash or secret is in it).
    """

    async def run() -> T:
        engine = create_engine(get_settings(), pooled=False)
        try:
            if needs_schema and not (state := await migrations.state(engine)).is_current:
                console.print(state.problem())
                raise typer.Exit(1)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, OSError) as error:
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [""])[0]
        console.print(
            f"[red]cannot use {_database_label()}[/red]: {type(cause).__name__}: {first_line}"
        )
        raise typer.Exit(2) from None


def _exit_cleanly(_signal: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes, each with its own pool.")
    ] = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    # Every worker checks the connection budget against this count at start.
    os.environ["CATALOG_WORKERS"] = str(workers)
    get_settings.cache_clear()
    # The process logs as its workers will (JSON lines in production), so that even its
    # first lines are records a log pipeline can read.
    logging.config.dictConfig(logging_config(get_settings()))
    logger.info("catalog on http://%s:%d (database %s)", host, port, _database_label())
    # uvicorn, once it has shut down gracefully on SIGTERM, raises the signal again
    # with the handler that was there before it started: this one, so that a clean
    # shutdown exits 0 (a SIGTERM before uvicorn is up exits at once, as it would).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    with contextlib.ExitStack() as stack:
        if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its metrics here; /metrics on any worker sums them all.
            shared = stack.enter_context(tempfile.TemporaryDirectory(prefix="catalog-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        uvicorn.run(
            "catalog.main:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            server_header=False,
            # The app writes one access line per request (catalog.logs), with the
            # request id, route template and timings; uvicorn's own costs more
            # (docs/benchmarks.md) and says less. Every worker applies the same logging.
            access_log=False,
            log_config=logging_config(get_settings()),
            # X-Forwarded-* and X-Request-ID are read by the app itself, only from the
            # proxies the settings name (catalog/requestid.py); uvicorn would believe
            # them from 127.0.0.1, so from anything on the same host.
            proxy_headers=False,
            # A second past the app's own deadline (catalog/shutdown.py), so that the
            # requests it cuts are answered before uvicorn would cancel them silently.
            timeout_graceful_shutdown=math.ceil(get_settings().shutdown_grace_period) + 1,
            # Bounds on a request's head, its size and its time (catalog/serving.py).
            http=BoundedHttpToolsProtocol,
        )


@app.command()
def doctor(
    workers: Annotated[
        int | None, typer.Option(min=1, help="Check for this many workers (default: settings).")
    ] = None,
) -> None:
    """Check the configuration against the database without starting the server."""
    settings = get_settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})

    async def work(
        engine: AsyncEngine,
    ) -> tuple[ServerFacts, SchemaState, list[str], PoolerFacts | str | None, str | None]:
        state = await migrations.state(engine)
        missing = await migrations.missing_indexes(engine) if state.is_current else []
        try:
            pooler: PoolerFacts | str | None = await pooler_of(settings)
        except PoolerError as error:
            pooler = str(error)
        replica = await replica_status(settings, engine)
        return await server_facts(engine), state, missing, pooler, replica

    facts, state, missing, pooler, replica = _with_engine(work, needs_schema=False)
    budget = budget_of(settings, facts, pooler if isinstance(pooler, PoolerFacts) else None)
    timeouts = timeout_advice(settings, facts)
    table = Table(title="catalog doctor", show_header=False)
    table.add_row("database", _database_label())
    table.add_row("server", facts.version)
    table.add_row("max_connections", str(facts.max_connections or "no limit"))
    table.add_row("connections in use now", str(facts.connections_in_use or "-"))
    if behind_transaction_pooler(settings):
        if isinstance(pooler, PoolerFacts):
            table.add_row(
                "pooler",
                f"{pooler.version}, pool_mode {pooler.pool_mode}, max_client_conn "
                f"{pooler.max_client_conn}, server pool {pooler.pool_size} + reserve "
                f"{pooler.reserve_pool}",
            )
        else:
            table.add_row(
                "pooler",
                pooler or "transaction mode; limits unknown (no CATALOG_POOLER_ADMIN_URL)",
            )
    if replica is not None:
        table.add_row("read replica", replica)
    for name in ("workers", "pool_size", "max_overflow", "pool_timeout", "pool_recycle"):
        table.add_row(name, str(getattr(settings, name)))
    table.add_row("pool_pre_ping", str(settings.pool_pre_ping))
    table.add_row("connect_timeout", str(settings.connect_timeout))
    if facts.statement_timeout is not None:
        table.add_row(
            "timeouts at the server",
            f"statement {facts.statement_timeout:g} s, idle in transaction "
            f"{facts.idle_in_transaction_timeout:g} s (0: none)",
        )
    for advice in timeouts:
        table.add_row("WARNING", advice)
    table.add_row("signing key", settings.signing_secret_source)
    table.add_row(
        "rate limits counted in",
        _without_password(settings.rate_limit_storage_url)
        if settings.rate_limit_storage_url
        else "each worker's memory (set CATALOG_RATE_LIMIT_STORAGE_URL to share them)",
    )
    table.add_row(
        "/metrics, /health/pool",
        "public"
        if settings.metrics_public
        else ("token" if settings.metrics_token else "closed (no CATALOG_METRICS_TOKEN)"),
    )
    table.add_row("schema", "up to date" if state.is_current else state.problem())
    if state.is_current:
        table.add_row(
            "indexes",
            "all present"
            if not missing
            else "MISSING: "
            + ", ".join(missing)
            + " (an interrupted bulk load drops them: empty the products table and run"
            " `catalog seed` again, or create them as the migrations do)",
        )
    table.add_row("connection budget", ("ok: " if budget.ok else "OVER: ") + budget.describe())
    console.print(table)
    if not (budget.ok and state.is_current and not missing and not isinstance(pooler, str)):
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the schema migrations to the configured database."""

    async def work(engine: AsyncEngine) -> str:
        await migrations.upgrade(engine, revision)
        return ", ".join(sorted((await migrations.state(engine)).current))

    current = _with_engine(work, needs_schema=False)
    console.print(f"{_database_label()} is at revision {current}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and whether it is the code's."""
    state = _with_engine(migrations.state, needs_schema=False)
    if state.is_current:
        console.print(f"{_database_label()} is up to date ({', '.join(sorted(state.current))})")
    else:
        console.print(state.problem())
        raise typer.Exit(1)


user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    # Piped: the first line of standard input (never a command-line argument, which
    # would end up in the shell history and the process list).
    return sys.stdin.readline().rstrip("\r\n")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The new user's email (the sign-in name).")],
    admin: Annotated[bool, typer.Option("--admin", help="May change the catalog.")] = False,
) -> None:
    """Create a user; the password is read from a prompt, or from standard input."""
    try:
        data = UserCreate(email=email, password=_read_password())
    except ValidationError as error:
        for problem in error.errors():
            console.print(f"{problem['loc'][0]}: {problem['msg']}")
        raise typer.Exit(2) from None

    async def work(engine: AsyncEngine) -> int:
        async with create_sessionmaker(engine)() as session:
            user = await user_service.create(
                session=session,
                hasher=PasswordHasher(concurrency=1, queue=0),
                data=data,
                role=Role.ADMIN if admin else Role.CUSTOMER,
            )
            await session.commit()
            return user.id

    try:
        user_id = _with_engine(work)
    except ConflictError as error:
        console.print(error.detail)
        raise typer.Exit(1) from None
    console.print(f"created {'admin' if admin else 'customer'} {data.email} (id {user_id})")


@contextlib.contextmanager
def _progress(label: str, total: int, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of `total` `unit`s (rows, or bytes of a file), with rows, rows/s,
    elapsed time and what is left; yields the function that reports (rows, done)."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(label, total=max(total, 1), rows=0, rate="-", unit=unit)
        started = time.perf_counter()

        def advance(rows: int, done: int) -> None:
            rate = rows / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, rows=rows, rate=f"{rate:,.0f}")

        yield advance
        progress.update(task, completed=max(total, 1))


FormatOption = Annotated[
    ExportFormat | None, typer.Option("--format", help="Default: from the extension.")
]


def _file_type(file: Path, given: ExportFormat | None) -> ExportFormat:
    try:
        return transfer.file_format(file, given)
    except ValueError as error:
        console.print(str(error))
        raise typer.Exit(2) from None


@app.command("import")
def import_products(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A .csv or .ndjson file.")
    ],
    file_format: FormatOption = None,
    on_error: Annotated[
        OnError,
        typer.Option(
            help="abort: report every bad row and write nothing; skip: write the good rows."
        ),
    ] = OnError.ABORT,
) -> None:
    """Add or update products (by SKU) from a file, checked by the API's rules."""
    file_type = _file_type(file, file_format)

    async def work(engine: AsyncEngine) -> transfer.ImportReport:
        with _progress(f"importing {file.name}", file.stat().st_size, "bytes") as advance:
            return await transfer.import_file(
                engine, file, file_type=file_type, on_error=on_error, on_progress=advance
            )

    report = _with_engine(work)
    for bad in report.errors:
        console.print(f"line {bad.line}: {bad.reason}")
    if report.invalid > len(report.errors):
        console.print(f"... and {report.invalid - len(report.errors):,} more bad rows")
    console.print(
        f"{report.rows:,} rows read, {report.written:,} products written, "
        f"{report.invalid:,} bad rows"
    )
    if report.invalid:
        raise typer.Exit(1)


@app.command("export")
def export_products(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="A .csv or .ndjson file to write.")],
    file_format: FormatOption = None,
) -> None:
    """Write every product to a file that `catalog import` reads back."""
    file_type = _file_type(file, file_format)

    async def work(engine: AsyncEngine) -> int:
        total = await products_repository.count_all(engine)
        with _progress(f"exporting to {file.name}", total, "rows") as advance:
            return await transfer.export_file(
                engine, file, file_type=file_type, on_progress=lambda rows: advance(rows, rows)
            )

    console.print(f"{_with_engine(work)} products written to {file}")


@app.command()
def seed(
    products: Annotated[int, typer.Option(min=0, help="How many demo products to add.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if there are products already.")
    ] = False,
) -> None:
    """Add deterministic demo products to an empty catalog."""

    async def work(engine: AsyncEngine) -> int:
        existing = await products_repository.count_all(engine)
        if existing:
            if if_empty:
                return 0
            console.print(
                f"the catalog already has {existing} products; seed fills an empty one "
                "(pass --if-empty to skip quietly)"
            )
            raise typer.Exit(1)
        with Progress(
            TextColumn("seeding products"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("seed", total=products, rate="-")

            def advance(done: int, rate: float) -> None:
                progress.update(task, completed=done, rate=f"{rate:,.0f}")

            return await product_seed.seed_products(
                engine, count=products, seed=seed, on_progress=advance
            )

    added = _with_engine(work)
    console.print(f"added {added} products to {_database_label()}")
