"""Links the service hands out (`Location`, `Link`), never built from the request's Host.

A `Host` or `X-Forwarded-Host` header is whatever the client sent: echoing it into a
link lets anyone make the service point clients at another site (cache poisoning,
phishing through a shared cache). Links are therefore paths relative to the service
(RFC 9110 and RFC 8288 allow URI references), or absolute under the configured
`CATALOG_PUBLIC_BASE_URL`.
"""

from typing import Any

from starlette.requests import Request

from catalog.config import Settings

__all__ = ["link_to", "link_to_this"]


def _absolute(request: Request, path: str) -> str:
    settings: Settings = request.app.state.settings
    base = settings.public_base_url
    return f"{base}{path}" if base else path


def link_to(request: Request, route_name: str, /, **path_params: Any) -> str:
    """The link to the route `route_name` with these path parameters."""
    # The app's mount point behind a proxy (--root-path), then the route's own path.
    root = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    return _absolute(request, root + request.app.url_path_for(route_name, **path_params))


def link_to_this(request: Request, query: str) -> str:
    """The link to this request's path with `query` as its query string."""
    return _absolute(request, f"{request.url.path}?{query}" if query else request.url.path)
