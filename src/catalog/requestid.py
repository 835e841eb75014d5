"""Request ids: every request gets one, answered in `X-Request-ID`, in every problem
body (`request_id`) and on every log line of the request (catalog.logs).

The id comes from the `X-Request-ID` of a trusted proxy (CATALOG_FORWARDED_ALLOW_IPS,
the same proxies whose X-Forwarded-For is believed), so that one id follows a request
from the edge through the service; from anyone else the header is ignored and an id
is generated, as it is when the proxy sent none or one that is not a plain token (a
client must not be able to choose the id an operator searches the logs for, nor put
a line break into a log line). asgi-correlation-id keeps the id in a context variable
and sends the header.
"""

import ipaddress
import re
from typing import Any, cast
from uuid import uuid4

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

__all__ = ["REQUEST_ID_HEADER", "TrustedProxyMiddleware", "current_request_id"]

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
# UUIDs, nginx's $request_id, AWS's Root=1-...; no spaces, quotes or control characters.
_VALID_ID = re.compile(r"[A-Za-z0-9._~:;=/+@-]{1,200}")


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return correlation_id.get()


def _valid(value: str) -> bool:
    return _VALID_ID.fullmatch(value) is not None


def _generate() -> str:
    return uuid4().hex


class _TrustedPeers:
    """The peers named by CATALOG_FORWARDED_ALLOW_IPS: addresses, networks or `*`."""

    def __init__(self, spec: str) -> None:
        names = [part.strip() for part in spec.split(",") if part.strip()]
        self.anyone = "*" in names
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.literals: set[str] = (
            set()
        )  # what is not an address, as uvicorn takes it (a socket path)
        for name in names:
            try:
                self.networks.append(ipaddress.ip_network(name, strict=False))
            except ValueError:
                self.literals.add(name)

    def __contains__(self, host: str) -> bool:
        if self.anyone or host in self.literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


class TrustedProxyMiddleware:
    """What only a trusted proxy may tell the service: the client's address and scheme
    (X-Forwarded-For/-Proto, through uvicorn's ProxyHeadersMiddleware) and the request
    id. Applied in the app rather than by the server, so that every server (uvicorn,
    Granian, a test client) behaves the same, and the id's trust is decided on the
    peer's own address, before X-Forwarded-For replaces it."""

    def __init__(self, app: ASGIApp, *, forwarded_allow_ips: str) -> None:
        self.peers = _TrustedPeers(forwarded_allow_ips)
        self.identified = CorrelationIdMiddleware(
            app,
            header_name=REQUEST_ID_HEADER,
            # The header the app sees is the id's, whether received or generated.
            update_request_header=True,
            generator=_generate,
            validator=_valid,
        )
        self.proxied: ASGIApp = self.identified
        if forwarded_allow_ips:
            # uvicorn types its middleware with its own ASGI types, Starlette's differ.
            self.proxied = cast(
                ASGIApp,
                ProxyHeadersMiddleware(
                    cast(Any, self.identified), trusted_hosts=forwarded_allow_ips
                ),
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.identified(scope, receive, send)
            return
        client = scope.get("client")
        if client is not None and client[0] in self.peers:
            await self.proxied(scope, receive, send)
            return
        headers = scope["headers"]
        if any(key == _HEADER_KEY for key, _ in headers):
            # Not the proxy's: dropped (a copy of the scope; the server keeps its own).
            scope = {**scope, "headers": [(k, v) for k, v in headers if k != _HEADER_KEY]}
        await self.identified(scope, receive, send)
