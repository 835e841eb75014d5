"""Prometheus metrics: the pool's state and timings, and HTTP requests by route.

With several worker processes, `catalog serve` points PROMETHEUS_MULTIPROC_DIR at a
shared directory before the workers start; every worker then writes its figures there
and `/metrics`, whichever worker answers, adds them all up (prometheus-client's
multiprocess mode). Pool gauges are summed over live workers.
"""

import asyncio
import os
import time
from collections import deque
from contextvars import ContextVar
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, event
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool
from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.asgi import WatchedSend
from catalog.db.pool import MeteredPool
from catalog.db.replica import ReplicaMonitor, ReplicaState
from catalog.logs import RequestLog, RequestTimes, add_pool_wait, request_times
from catalog.operators import OperatorsOnly

__all__ = [
    "CHECKOUT_TIMEOUTS",
    "CHECKOUT_WAIT",
    "CONNECTION_HOLD",
    "CONNECTS",
    "DISCONNECTS",
    "INVALIDATIONS",
    "POOL_CHECKED_OUT",
    "POOL_OVERFLOW",
    "POOL_SIZE",
    "POOL_WAITING",
    "READS_ROUTED",
    "REPLICA_LAG",
    "REPLICA_USABLE",
    "FigureHistory",
    "RequestMetricsMiddleware",
    "current_route",
    "figures",
    "mark_worker_stopped",
    "multiprocess_dir",
    "observe_pool",
    "observe_replica",
    "router",
]

# Seconds: from sub-millisecond checkouts to the pool timeout and past it.
_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

POOL_SIZE = Gauge(
    "catalog_db_pool_size", "Connections the pools keep open", multiprocess_mode="livesum"
)
POOL_CHECKED_OUT = Gauge(
    "catalog_db_pool_checked_out",
    "Connections lent to requests now",
    multiprocess_mode="livesum",
)
POOL_OVERFLOW = Gauge(
    "catalog_db_pool_overflow",
    "Connections open beyond pool_size now",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "catalog_db_pool_waiting",
    "Requests waiting for a connection now",
    multiprocess_mode="livesum",
)
CHECKOUT_WAIT = Histogram(
    "catalog_db_pool_checkout_wait_seconds",
    "Time to get a connection from the pool (including opening one)",
    buckets=_WAIT_BUCKETS,
)
CONNECTION_HOLD = Histogram(
    "catalog_db_connection_hold_seconds",
    "Time a connection stays checked out, by route template",
    ["route"],
    buckets=_DURATION_BUCKETS,
)
CONNECTS = Counter("catalog_db_connects", "New connections opened to the database")
DISCONNECTS = Counter("catalog_db_disconnects", "Connections closed (recycled, overflow, dispose)")
INVALIDATIONS = Counter(
    "catalog_db_invalidations", "Connections found dead or invalidated after an error"
)
CHECKOUT_TIMEOUTS = Counter(
    "catalog_db_checkout_timeouts", "Requests that got no connection within pool_timeout"
)
REQUESTS = Counter("catalog_http_requests", "HTTP requests answered", ["method", "route", "status"])
REQUEST_DURATION = Histogram(
    "catalog_http_request_duration_seconds",
    "Time to answer an HTTP request, to the last byte",
    ["method", "route", "status"],
    buckets=_DURATION_BUCKETS,
)

_current_scope: ContextVar[Scope | None] = ContextVar("catalog_current_scope", default=None)


def _route_of(scope: Scope | None) -> str:
    if scope is None:
        return "<none>"
    route = scope.get("route")
    # The template ("/products/{product_id}"), never the raw path: bounded label values.
    return str(getattr(route, "path", "<unmatched>"))


def current_route() -> str:
    """The route template of the request being served, for labelling pool metrics."""
    return _route_of(_current_scope.get())


_CHECKOUT_KEY = "catalog.metrics.checked_out_at"


def _update_gauges(pool: Pool) -> None:
    if isinstance(pool, AsyncAdaptedQueuePool):
        POOL_SIZE.set(pool.size())
        POOL_CHECKED_OUT.set(pool.checkedout())
        POOL_OVERFLOW.set(max(pool.overflow(), 0))


class _CheckoutWaits:
    """The pool's waits, into the metrics (a catalog.db.pool.CheckoutListener)."""

    def checkout_started(self) -> None:
        POOL_WAITING.inc()

    def checkout_ended(self, waited: float, timed_out: bool) -> None:
        POOL_WAITING.dec()
        CHECKOUT_WAIT.observe(waited)
        add_pool_wait(waited)
        if timed_out:
            CHECKOUT_TIMEOUTS.inc()


REPLICA_LAG = Gauge(
    "catalog_db_replica_lag_seconds",
    "How far the read replica is behind the primary (at the last check)",
    multiprocess_mode="livemax",
)
REPLICA_USABLE = Gauge(
    "catalog_db_replica_usable",
    "1 when the read replica serves reads, 0 when reads go to the primary",
    multiprocess_mode="livemin",
)
READS_ROUTED = Counter(
    "catalog_db_reads_routed_total",
    "Public reads by where they went: replica, or primary and why (token, lag, down)",
    ["to"],
)


def observe_replica(monitor: ReplicaMonitor) -> None:
    """Feed the replica monitor's checks and routing decisions to the metrics."""

    def checked(state: ReplicaState) -> None:
        REPLICA_USABLE.set(1 if state.usable else 0)
        if state.lag is not None:
            REPLICA_LAG.set(state.lag)

    monitor.on_check = checked
    monitor.on_route = lambda where: READS_ROUTED.labels(where).inc()
    checked(monitor.state)


def observe_pool(engine: Engine) -> None:
    """Feed the engine's pool events to the metrics. dispose() swaps in a new pool with
    the same listeners: the gauges read the engine's pool of the moment."""
    pool = engine.pool
    _update_gauges(pool)
    if isinstance(pool, MeteredPool):
        pool.listeners.append(_CheckoutWaits())

    @event.listens_for(pool, "connect")
    def _connected(_dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        CONNECTS.inc()

    @event.listens_for(pool, "checkout")
    def _checked_out(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        record.info[_CHECKOUT_KEY] = (time.perf_counter(), current_route())
        _update_gauges(engine.pool)

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        checked_out = record.info.pop(_CHECKOUT_KEY, None)
        if checked_out is not None:
            started, route = checked_out
            CONNECTION_HOLD.labels(route).observe(time.perf_counter() - started)
        _update_gauges(engine.pool)

    @event.listens_for(pool, "invalidate")
    def _invalidated(_dbapi_connection: Any, _record: ConnectionPoolEntry, _exc: Any) -> None:
        INVALIDATIONS.inc()

    @event.listens_for(pool, "close")
    def _closed(_dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        DISCONNECTS.inc()


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status, and
    writes its access line (catalog.logs): one middleware, one clock, for both."""

    def __init__(self, app: ASGIApp, *, request_log: RequestLog) -> None:
        self.app = app
        self.request_log = request_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _current_scope.set(scope)
        times = RequestTimes()
        times_token = request_times.set(times)
        started = time.perf_counter()
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            took = time.perf_counter() - started
            _current_scope.reset(token)
            request_times.reset(times_token)
            status = watched.status or 500
            route = _route_of(scope)
            method = scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            REQUEST_DURATION.labels(method, route, str(status)).observe(took)
            self.request_log.finished(method, route, status, took, times)


def multiprocess_dir() -> str | None:
    """The directory shared by worker processes, when several serve."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_worker_stopped() -> None:
    """Drop this worker's live gauges from the shared figures when it stops."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


router = APIRouter(tags=["operations"])


def _registry() -> Any:
    # The figures of this process, or of every worker when several serve.
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


@router.get("/metrics", include_in_schema=False, dependencies=[OperatorsOnly])
async def metrics() -> Response:
    """Prometheus text format; touches no database."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


# The series the operator page draws, from the samples /metrics shows.
_GAUGES = {
    "catalog_db_pool_size": "pool_size",
    "catalog_db_pool_checked_out": "checked_out",
    "catalog_db_pool_overflow": "overflow",
    "catalog_db_pool_waiting": "waiting",
}
_COUNTERS = {
    "catalog_db_connects_total": "connects",
    "catalog_db_checkout_timeouts_total": "timeouts",
    "catalog_db_invalidations_total": "invalidations",
}


def figures(*, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pool's gauges and the running totals of requests, 4xx (`client_errors`) and 5xx
    (`errors`) answers and latency, summed
    over routes (those under `leave_out` not counted: a page polling for these figures
    would otherwise show up in them). The same samples as /metrics, in one JSON object:
    a reader takes two and divides the differences by the time between them."""
    totals: dict[str, float] = dict.fromkeys(
        [
            *_GAUGES.values(),
            *_COUNTERS.values(),
            "requests",
            "client_errors",
            "errors",
            "unavailable",
        ],
        0.0,
    )
    totals |= {"latency_sum": 0.0, "latency_count": 0.0}
    buckets: dict[str, float] = {}
    for metric in _registry().collect():
        for sample in metric.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if labels.get("route", "").startswith(leave_out or ("\0",)):
                continue
            if name in _GAUGES:
                totals[_GAUGES[name]] += value
            elif name in _COUNTERS:
                totals[_COUNTERS[name]] += value
            elif name == "catalog_http_requests_total":
                totals["requests"] += value
                if labels["status"].startswith("4"):
                    totals["client_errors"] += value
                elif labels["status"].startswith("5"):
                    totals["errors"] += value
                if labels["status"] == "503":
                    totals["unavailable"] += value
            elif name == "catalog_http_request_duration_seconds_bucket":
                buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
            elif name == "catalog_http_request_duration_seconds_sum":
                totals["latency_sum"] += value
            elif name == "catalog_http_request_duration_seconds_count":
                totals["latency_count"] += value
    # The +Inf bucket is latency_count (and JSON has no infinity).
    by_bound = sorted(
        ((bound, count) for bound, count in buckets.items() if bound != "+Inf"),
        key=lambda item: float(item[0]),
    )
    return {
        "time": time.time(),
        **totals,
        "latency_buckets": [[float(bound), count] for bound, count in by_bound],
    }


class FigureHistory:
    """The last `keep` samples of `figures()`, one taken every `interval` seconds while
    the service runs: a page opened during an incident shows what led to it, not only
    what it sees from then on. Each worker keeps its own (with several workers, of the
    figures they share). About a millisecond of work a second."""

    def __init__(
        self, *, keep: int = 300, interval: float = 1.0, leave_out: tuple[str, ...] = ()
    ) -> None:
        self.interval = interval
        self.leave_out = leave_out
        self._samples: deque[dict[str, Any]] = deque(maxlen=keep)

    def sample(self) -> None:
        """Take one sample now."""
        self._samples.append(figures(leave_out=self.leave_out))

    def samples(self) -> list[dict[str, Any]]:
        """The samples kept, oldest first."""
        return list(self._samples)

    async def run(self) -> None:
        """Take a sample every `interval` seconds until cancelled, the first one
        `interval` after the start: nothing runs beside the service's start-up."""
        while True:
            await asyncio.sleep(self.interval)
            self.sample()
