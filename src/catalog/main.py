"""The application factory: `create_app()` wires settings, engine, routers and errors."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import catalog
from catalog import apidocs, health, metrics, openapi, problems
from catalog.config import Settings, get_settings
from catalog.consistency import ConsistencyTokenMiddleware
from catalog.cors import add_cors
from catalog.db.engine import behind_transaction_pooler, create_engine
from catalog.db.replica import ReplicaMonitor
from catalog.db.session import Reader, create_sessionmaker
from catalog.errors import UnhandledErrorMiddleware, install_error_handling
from catalog.head import HeadAsGetMiddleware
from catalog.limits import BodySizeLimitMiddleware
from catalog.logs import RequestLog, observe_statements
from catalog.orders.router import router as orders_router
from catalog.products import service as product_service
from catalog.products.router import router as products_router
from catalog.ratelimits import RateLimits, Slots
from catalog.requestid import TrustedProxyMiddleware
from catalog.shutdown import ShutdownDeadline, ShutdownDeadlineMiddleware
from catalog.startup import StartupCheckError, check_database
from catalog.tracing import instrument_app, instrument_engine
from catalog.users.router import router as users_router
from catalog.users.security import PasswordHasher
from catalog.web import IMPORT_PATH, STATIC_PATH, error_page, figure_history, static_files
from catalog.web import router as web_router

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["create_app", "served_app"]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    logger.info("tokens and cursors are signed with %s", settings.signing_secret_source)
    # The process's one engine: it owns the pool, lives as long as the app, and is
    # disposed on shutdown so no connection outlives the process at the server.
    engine = create_engine(settings)
    metrics.observe_pool(engine.sync_engine)
    observe_statements(
        engine.sync_engine,
        slow_seconds=settings.slow_statement_seconds,
        route=metrics.current_route,
    )
    rate_limits: RateLimits | None = None
    stop_watching = app.state.shutdown.watch_signals()
    app.state.replica = None
    stack = AsyncExitStack()
    try:
        await check_database(engine, settings)
        app.state.engine = engine
        # After the start-up checks: a trace begins with a request, not with those.
        instrument_engine(engine, app.state.tracer_provider)
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reader = reader = Reader(
            engine, in_transactions=behind_transaction_pooler(settings)
        )
        if settings.read_database_url:
            replica = await stack.enter_async_context(
                _read_replica(settings, app.state.tracer_provider)
            )
            app.state.replica, app.state.replica_reader, app.state.replica_sessionmaker = replica
            app.state.commit_position = partial(replica[0].commit_position, reader)
            metrics.observe_replica(replica[0])
        # The operator page's last five minutes, sampled while the service runs.
        stack.push_async_callback(_stopped, asyncio.create_task(app.state.figure_history.run()))
        app.state.password_hasher = PasswordHasher.from_settings(settings)
        app.state.rate_limits = rate_limits = RateLimits(settings)
        app.state.export_slots = Slots(
            "exports", total=settings.max_exports, per_client=settings.max_exports_per_client
        )
        if app.state.freeze_gc:
            # What exists now (modules, the app, the engine) lives as long as the
            # process: out of the collector's reach, no full collection walks it again
            # (the pauses this saves are in docs/benchmarks.md). Only for an app that
            # is the process's one app: frozen objects are never freed.
            gc.collect()
            gc.freeze()
        yield
    finally:
        stop_watching()
        await stack.aclose()
        if rate_limits is not None:
            await rate_limits.aclose()
        await engine.dispose()
        metrics.mark_worker_stopped()


async def _stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@asynccontextmanager
async def _read_replica(
    settings: Settings, tracer_provider: "TracerProvider | None"
) -> AsyncIterator[tuple[ReplicaMonitor, Reader, async_sessionmaker[AsyncSession]]]:
    """The read replica's engine, Reader and sessions, and the monitor that decides
    whether a read may go there."""
    read_settings = settings.replica_settings()
    read_engine = create_engine(read_settings)
    instrument_engine(read_engine, tracer_provider)
    observe_statements(
        read_engine.sync_engine,
        slow_seconds=settings.slow_statement_seconds,
        route=metrics.current_route,
    )
    # The monitor's connections are its own, one at each server: a check must not wait
    # behind requests in a busy pool (that would look like an outage, or hide a lag,
    # exactly when the servers are busiest).
    one = {"pool_size": 1, "max_overflow": 0}
    check_replica = create_engine(read_settings.model_copy(update=one))
    check_primary = create_engine(settings.model_copy(update=one))
    monitor = ReplicaMonitor(
        Reader(check_primary, in_transactions=behind_transaction_pooler(settings)),
        check_replica,
        max_lag=settings.replica_max_lag,
        interval=settings.replica_check_interval,
        timeout=settings.ready_timeout,
    )
    if problem := await monitor.unsupported():
        await check_replica.dispose()
        await check_primary.dispose()
        await read_engine.dispose()
        raise StartupCheckError(f"catalog cannot start: {problem}")
    await monitor.check()  # a replica that is down at start is skipped from the start
    watching = asyncio.create_task(monitor.run(), name="catalog-replica-monitor")
    try:
        reader = Reader(read_engine, in_transactions=behind_transaction_pooler(read_settings))
        yield monitor, reader, create_sessionmaker(read_engine)
    finally:
        watching.cancel()
        with suppress(asyncio.CancelledError):
            await watching
        for engine in (read_engine, check_replica, check_primary):
            await engine.dispose()


def create_app(
    settings: Settings | None = None,
    *,
    freeze_gc: bool = False,
    tracer_provider: "TracerProvider | None" = None,
) -> FastAPI:
    """Build the ASGI app; the engine is created when it starts, not here.

    `freeze_gc`: the app is the process's only one (a server's worker), and what exists
    when it has started is taken out of the garbage collector's reach (gc.freeze).

    `tracer_provider`: where spans go when CATALOG_TRACING is on (by default a provider
    made from the settings: catalog/tracing.py).
    """
    app = FastAPI(
        title="catalog",
        version=catalog.__version__,
        description="Product catalog and ordering API. Errors are RFC 9457 problem+json.",
        lifespan=_lifespan,
        # Any route can meet an unexpected error; routes that use the database can
        # also meet an unavailable one.
        responses=problems.problem_examples("internal-error"),
        # Operation ids and tags are what generated clients are built from.
        generate_unique_id_function=openapi.operation_id,
        openapi_tags=openapi.TAGS,
        # /docs and /redoc are catalog.apidocs's: FastAPI's load their scripts from a CDN.
        docs_url=None,
        redoc_url=None,
        # `/products/` is a 404, not a redirect: Starlette builds the redirect's
        # Location from the Host header the client sent (catalog/links.py says why not).
        redirect_slashes=False,
    )
    app.state.settings = settings or get_settings()
    app.state.freeze_gc = freeze_gc
    app.state.category_cache = product_service.CategoryCache(app.state.settings.categories_ttl)
    app.state.count_cache = product_service.CountCache(app.state.settings.result_counts_ttl)
    app.state.figure_history = figure_history()
    # A browser's problems are pages, on every route (catalog.errors.handle_error).
    app.state.problem_page = error_page
    install_error_handling(app)
    # Innermost: the metrics middleware sees the 500 it answers.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=app.state.settings.max_body_bytes,
        larger={IMPORT_PATH: app.state.settings.max_import_bytes},
    )
    app.state.shutdown = ShutdownDeadline(app.state.settings.shutdown_grace_period)
    app.add_middleware(ShutdownDeadlineMiddleware, deadline=app.state.shutdown)
    # Outside the rest, so that it times whole requests, 413s included.
    app.add_middleware(
        metrics.RequestMetricsMiddleware,
        request_log=RequestLog(
            enabled=app.state.settings.access_log,
            slow_seconds=app.state.settings.slow_request_seconds,
        ),
    )
    app.add_middleware(HeadAsGetMiddleware)
    if app.state.settings.read_database_url:
        app.add_middleware(
            ConsistencyTokenMiddleware,
            max_lag=app.state.settings.replica_max_lag,
            check_interval=app.state.settings.replica_check_interval,
        )
    # Preflights are answered here, with a request id, uncounted (catalog/cors.py).
    add_cors(app, app.state.settings)
    # Outermost: the request id exists before anything else runs or logs.
    app.add_middleware(
        TrustedProxyMiddleware, forwarded_allow_ips=app.state.settings.forwarded_allow_ips
    )
    # Last, so that the request id it puts on the server span is the response's.
    app.state.tracer_provider = (
        instrument_app(app, tracer_provider) if app.state.settings.tracing else None
    )
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(products_router)
    app.include_router(users_router)
    app.include_router(orders_router)
    app.include_router(problems.router)
    # Pages for people (`/` in a browser, /search, /product/{id}) and their assets.
    app.include_router(web_router)
    apidocs.install(app, swagger_ui_parameters=openapi.SWAGGER_UI_PARAMETERS)
    app.mount(STATIC_PATH, static_files(), name="static")
    return app


def served_app() -> FastAPI:
    """The app as each worker of `catalog serve` runs it (uvicorn's factory)."""
    return create_app(freeze_gc=True)
