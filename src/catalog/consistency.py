"""Reads that a read replica may serve, and the consistency token that keeps a client's
own writes in its later reads (docs/scale-out.md).

A write's response carries `Consistency-Token: <the primary's position after the commit>`
(a WAL position on PostgreSQL, a Galera seqno on MariaDB), and a
cookie with the same value for browsers. A read that sends the token back (the header,
or the cookie) is served by the replica only if the replica has replayed at least that
far; else by the primary. A read without one may be served by a replica up to
`replica_max_lag` seconds behind. Without a replica, none of this happens: no token is
made, reads go to the one database.
"""

import math
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.db.replica import ReplicaMonitor
from catalog.db.session import Reader
from catalog.errors import CatalogError

__all__ = [
    "CONSISTENCY_COOKIE",
    "CONSISTENCY_HEADER",
    "ConsistencyTokenMiddleware",
    "InvalidConsistencyTokenError",
    "ReplicaReaderDep",
    "ReplicaSessionFactoryDep",
]

CONSISTENCY_HEADER = "Consistency-Token"
CONSISTENCY_COOKIE = "catalog_consistency"


class InvalidConsistencyTokenError(CatalogError):
    status_code = 400
    slug = "invalid-consistency-token"


def _token(request: Request, monitor: ReplicaMonitor) -> int | None:
    """The position the client's reads must include, if it sent one."""
    value = request.headers.get(CONSISTENCY_HEADER) or request.cookies.get(CONSISTENCY_COOKIE)
    if value is None:
        return None
    position = monitor.parse_token(value)
    if position is None:
        raise InvalidConsistencyTokenError(
            f"{CONSISTENCY_HEADER} must be a token from a response of this service"
        )
    return position


def _to_replica(request: Request) -> bool:
    monitor = cast(ReplicaMonitor | None, request.app.state.replica)
    return monitor is not None and monitor.choose(_token(request, monitor))


async def get_replica_reader(request: Request) -> Reader:
    """The replica's Reader when it may serve this read, else the primary's."""
    state = request.app.state
    return cast(Reader, state.replica_reader if _to_replica(request) else state.reader)


async def get_replica_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """Sessions on the replica when it may serve this read (streamed exports)."""
    state = request.app.state
    chosen = state.replica_sessionmaker if _to_replica(request) else state.sessionmaker
    return cast(async_sessionmaker[AsyncSession], chosen)


# For public reads that may see data up to replica_max_lag old, unless the client sends
# the token of its last write: GET /products, GET /products/{id}, the export.
ReplicaReaderDep = Annotated[Reader, Depends(get_replica_reader)]
ReplicaSessionFactoryDep = Annotated[
    async_sessionmaker[AsyncSession], Depends(get_replica_sessionmaker)
]


class ConsistencyTokenMiddleware:
    """Puts the token of the request's write (set by the session dependency after its
    commit) on the response: a header for API clients, a cookie for browsers."""

    def __init__(self, app: ASGIApp, *, max_lag: float, check_interval: float) -> None:
        self.app = app
        # A replica that has not applied the write by then lags more than max_lag, and
        # the monitor has seen it (within two checks): the cookie is moot after that.
        self.cookie_max_age = math.ceil(max_lag + 2 * check_interval) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start":
                token = scope.get("state", {}).get("consistency_token")
                if token is not None:
                    headers = MutableHeaders(scope=message)
                    headers[CONSISTENCY_HEADER] = token
                    secure = "; Secure" if scope.get("scheme") == "https" else ""
                    headers.append(
                        "Set-Cookie",
                        f"{CONSISTENCY_COOKIE}={token}; Max-Age={self.cookie_max_age}; "
                        f"Path=/; HttpOnly; SameSite=Lax{secure}",
                    )
            await send(message)

        await self.app(scope, receive, send_with_token)
