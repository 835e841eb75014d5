"""The HTTP connection as `catalog serve` runs it: uvicorn's httptools protocol, bounded.

uvicorn's httptools parser takes a request head of any size (a 200 MB header was read
whole, and the worker grew by 380 MB) and waits for it for ever (a client that sends
one byte a minute, or nothing, keeps its socket open). One client could so hold the
memory and the sockets of every other. This protocol adds two bounds:

- a request head (request line and headers) larger than `CATALOG_MAX_HEADER_BYTES` is
  answered 431 and the connection closed, once that much has arrived: a head is never
  buffered past the bound plus one read of the socket (256 KiB);
- a client has `CATALOG_CLIENT_TIMEOUT` seconds to send a request's head from the
  moment it connects or starts the request, and may stay silent that long at most while
  it sends a body; then the connection is closed (with 408 if no request was under way).
  Between requests, uvicorn's own keep-alive timeout (5 s) closes an idle connection.

Passing a protocol class to uvicorn is its public `Config(http=...)`; the class extends
the one uvicorn picks for `--http httptools` through the parser callbacks that httptools
documents (`on_message_begin`, `on_headers_complete`, `on_body`, `on_message_complete`)
and asyncio's `Protocol` methods. tests/test_serving.py checks each bound on a real
server, so that a uvicorn release that changes them fails there.
"""

import asyncio
import logging
from typing import Any

from fastapi.responses import JSONResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from catalog.config import get_settings
from catalog.errors import problem_response

__all__ = ["BoundedHttpToolsProtocol"]

logger = logging.getLogger(__name__)


def _answer(response: JSONResponse, reason: str) -> bytes:
    # Written on the socket itself: the request never reached the app, so neither its
    # handler nor its middleware apply; the problem is the one the app would send.
    head = [f"HTTP/1.1 {response.status_code} {reason}".encode()]
    head += [name + b": " + value for name, value in response.raw_headers]
    head.append(b"connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + bytes(response.body)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the size of a request's head and
    on how long a client may take to send it, or stay silent in a body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._max_head_bytes = settings.max_header_bytes
        self._client_timeout = settings.client_timeout
        self._head_bytes = 0  # of the head being read, counted as it arrives
        self._in_head = True  # waiting for (the rest of) a request's head
        self._in_body = False
        self._too_large = False  # a head over the bound: nothing more is passed on
        self._deadline: asyncio.TimerHandle | None = None

    def _watch(self) -> None:
        self._unwatch()
        self._deadline = self.loop.call_later(self._client_timeout, self._too_slow)

    def _unwatch(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_body and self.flow.read_paused:
            # Not the client's silence: uvicorn stopped reading until the app takes the
            # body it holds (a large import, read as fast as it is stored).
            self._watch()
            return
        if self._in_head and self.headers is not None:  # a request was begun
            detail = f"The request's head did not arrive within {self._client_timeout:g} s."
            problem = problem_response(408, "request-timeout", detail)
            self.transport.write(_answer(problem, "Request Timeout"))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()  # a client that connects and says nothing is let go too

    def connection_lost(self, exc: Exception | None) -> None:
        self._unwatch()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._too_large or (self._in_head and self._head_bytes > self._max_head_bytes):
            # A whole head over the bound in what was read, or no end of the head yet
            # and already past it.
            self._refuse_large_head()
        # Timers only for a request that did not arrive whole in one read (most do):
        # a head has the timeout from its first byte (or from the connection's start),
        # a body may be silent for the timeout between two parts.
        elif self._in_head:
            if self._deadline is None:
                self._watch()
        elif self._in_body:
            self._watch()

    def _refuse_large_head(self) -> None:
        if self.transport.is_closing():
            return
        logger.warning(
            "request head over %d bytes from %s: refused with 431",
            self._max_head_bytes,
            self.client[0] if self.client else "?",
        )
        detail = f"The request line and headers are over {self._max_head_bytes:,} bytes."
        problem = problem_response(431, "request-header-fields-too-large", detail)
        self.transport.write(_answer(problem, "Request Header Fields Too Large"))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True  # the next request on this connection, or the first

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self._max_head_bytes or self._too_large:
            # Not passed on: the app never sees this request, data_received answers it.
            # (An exception here would reach uvicorn as a parser error: a 400.)
            self._too_large = True
            return
        self._in_head, self._head_bytes = False, 0
        self._in_body = True
        self._unwatch()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._too_large:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._too_large:
            return
        self._in_body = False
        self._unwatch()
        super().on_message_complete()
