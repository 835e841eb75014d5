"""How a page is made: templates, the headers every page carries, its static assets,
and errors shown as pages.

Templates are rendered after the services have returned, so no connection is checked
out while Jinja2 works; the pages are small (a page of products), so they are
rendered on the event loop.
"""

import hashlib
import json
from collections.abc import Callable, Coroutine, Mapping
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from catalog.errors import handle_error

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "STATIC_PATH",
    "PageRoute",
    "path_to",
    "render",
    "static_files",
]

# Only what the service itself serves: no inline script or style, no CDN, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

STATIC_PATH = "/static"
_STATIC_DIRECTORY = Path(__file__).parent / "static"
# A URL that names the file's content (?v=) never changes meaning: keep it a year.
# Without the right version, ask again each time (the ETag makes that a 304).
_VERSIONED = "public, max-age=31536000, immutable"
_UNVERSIONED = "no-cache"

_templates = Environment(
    loader=PackageLoader("catalog.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@cache
def _fingerprint(name: str) -> str:
    """A short hash of a static file's content: its version in URLs."""
    return hashlib.sha256((_STATIC_DIRECTORY / name).read_bytes()).hexdigest()[:12]


def _root(request: Request) -> str:
    # The app's mount point behind a proxy (--root-path), as catalog.links reads it.
    return str(request.scope.get("app_root_path", request.scope.get("root_path", "")))


def path_to(request: Request, path: str, query: Mapping[str, str] | None = None) -> str:
    """A link to one of the service's own pages: relative, never built from Host."""
    link = _root(request) + path
    return f"{link}?{urlencode(query)}" if query else link


def _static(request: Request, name: str) -> str:
    return path_to(request, f"{STATIC_PATH}/{name}", {"v": _fingerprint(name)})


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page `template` shows `context` with, and the headers every page carries."""
    html = _templates.get_template(template).render(
        **context,
        root=_root(request),
        static=lambda name: _static(request, name),
    )
    return HTMLResponse(html, status_code=status_code, headers={**_PAGE_HEADERS, **(headers or {})})


_TITLES = {
    400: "That request could not be understood",
    404: "Not found",
    422: "Something in the request is not valid",
    500: "Something went wrong on our side",
    503: "The service is busy",
}
# Headers of the problem that still mean something on its page.
_KEPT = ("allow", "cache-control", "retry-after", "www-authenticate")


async def error_page(request: Request, exc: Exception) -> HTMLResponse:
    """The page of an error, worded by the service's one handler (catalog.errors)."""
    problem = await handle_error(request, exc)
    body = json.loads(bytes(problem.body))
    status = problem.status_code
    context = {
        "title": _TITLES.get(status, HTTPStatus(status).phrase),
        "status": status,
        "detail": body["detail"],
        "errors": body.get("errors", []),
        "request_id": body.get("request_id"),
    }
    headers = {name: value for name, value in problem.headers.items() if name in _KEPT}
    return render(request, "error.html", context, status_code=status, headers=headers)


class PageRoute(APIRoute):
    """A route whose errors are pages too: a bad id, an unknown product, a database
    that is down are worded as the API words them and shown as HTML."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return await error_page(request, exc)

        return page_handler


class _StaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            asked = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1")).get("v")
            current = asked == [_fingerprint(path)]
            response.headers["Cache-Control"] = _VERSIONED if current else _UNVERSIONED
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_files() -> StaticFiles:
    """The pages' CSS (and later scripts), served from the package."""
    return _StaticFiles(directory=_STATIC_DIRECTORY)
