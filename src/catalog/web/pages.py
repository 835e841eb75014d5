"""How a page is made: templates, the headers every page carries, its static assets,
and errors shown as pages.

Templates are rendered after the services have returned, so no connection is checked
out while Jinja2 works; the pages are small (a page of products), so they are
rendered on the event loop.
"""

import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from decimal import Decimal
from functools import cache, lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import pydantic
from babel import Locale
from babel.numbers import format_currency, get_decimal_symbol
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from catalog.errors import AnswerInstead
from catalog.schemas import in_words

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "STATIC_PATH",
    "PageRoute",
    "Redirect",
    "ShowPage",
    "finish",
    "frame_value",
    "path_to",
    "redirect",
    "render",
    "render_fragment",
    "static_files",
    "stream",
]

_R = TypeVar("_R", bound=Response)

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
    # The templates are the package's: no stat of each file on every page to see
    # whether it changed (`catalog serve --reload` starts a new process anyway).
    auto_reload=False,
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@cache
@cache
def _fingerprint(name: str) -> str:
    """A short hash of a static file's content: its version in URLs. Computed once per
    process: the files are the package's, and change only with a release (every page
    links the stylesheet, and reading and hashing it was a tenth of a product page)."""
    return hashlib.sha256((_STATIC_DIRECTORY / name).read_bytes()).hexdigest()[:12]


def _root(request: Request) -> str:
    # The app's mount point behind a proxy (--root-path), as catalog.links reads it.
    return str(request.scope.get("app_root_path", request.scope.get("root_path", "")))


QueryPairs = Mapping[str, str] | Sequence[tuple[str, str]]


def path_to(request: Request, path: str, query: QueryPairs | None = None) -> str:
    """A link to one of the service's own pages: relative, never built from Host."""
    link = _root(request) + path
    return f"{link}?{urlencode(query)}" if query else link


def _static(request: Request, name: str) -> str:
    return path_to(request, f"{STATIC_PATH}/{name}", {"v": _fingerprint(name)})


# A page for a signed-in visitor, or with a form's token, is theirs alone.
_PERSONAL = {"Cache-Control": "private, no-store"}


def finish(request: Request, response: _R) -> _R:
    """The cookies decided while the page was made (catalog.web.visitors), set on its
    response; a personal page kept out of shared caches. Every page goes through here."""
    cookies: dict[str, tuple[str | None, int | None]] = getattr(request.state, "cookies", {})
    secure = request.url.scheme == "https"
    path = _root(request) or "/"
    for name, (value, max_age) in cookies.items():
        if value is None:
            response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite="lax")
        else:
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path=path,
                secure=secure,
                httponly=True,
                samesite="lax",
            )
    visitor = getattr(request.state, "visitor", None)
    if cookies or getattr(request.state, "personal", None) or (visitor and visitor.signed_in):
        response.headers.update(_PERSONAL)
    # The same URL is a guest's page or a signed-in one: caches key on the cookies.
    response.headers["Vary"] = ", ".join(filter(None, [response.headers.get("Vary"), "Cookie"]))
    return response


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page `template` shows `context` with, and the headers every page carries."""
    html = render_fragment(request, template, context)
    response = HTMLResponse(
        html, status_code=status_code, headers={**_PAGE_HEADERS, **(headers or {})}
    )
    return finish(request, response)


# What every page's frame shows besides its own context (the header's cart count),
# each read from the request by a function that a module of catalog.web registers.
_FRAME: dict[str, Callable[[Request], Any]] = {}


def frame_value(name: str) -> Callable[[Callable[[Request], Any]], Callable[[Request], Any]]:
    """Register a function of the request whose value every page can show as `name`."""

    def register(function: Callable[[Request], Any]) -> Callable[[Request], Any]:
        _FRAME[name] = function
        return function

    return register


@lru_cache(maxsize=65_536)
def _money(amount: Decimal, currency: str, locale: str) -> str:
    # Cached: Babel takes about 10 us a price, and a results page shows twenty; the
    # same prices come back page after page.
    return format_currency(amount, currency, locale=Locale.parse(locale))


@frame_value("money")
def _money_of(request: Request) -> Callable[[Decimal], str]:
    """A price as the shop writes it: its currency, the locale's grouping and decimal
    mark ("$1,234.50", "1.234,50 €")."""
    settings = request.app.state.settings
    return lambda amount: _money(amount, settings.currency, settings.locale)


_DECIMAL_COMMA = re.compile(r"[0-9]{1,10},[0-9]{1,2}")


def decimal_point(text: str, locale: str) -> str:
    """A price typed in a form, with the locale's decimal comma ("19,99" where the
    locale writes 19,99) read as the API writes it ("19.99"); anything else as it is,
    for the field's own checks. Grouped amounts ("1.234,56") are not guessed at."""
    stripped = text.strip()
    if get_decimal_symbol(locale) == "," and _DECIMAL_COMMA.fullmatch(stripped):
        return stripped.replace(",", ".")
    return text


def render_fragment(request: Request, template: str, context: Mapping[str, Any]) -> str:
    """Part of a page (a streamed page's pieces), as render() would fill it in."""
    return _templates.get_template(template).render(
        **context,
        **{name: function(request) for name, function in _FRAME.items()},
        root=_root(request),
        static=lambda name: _static(request, name),
        visitor=getattr(request.state, "visitor", None),
    )


def stream(request: Request, chunks: AsyncIterator[str]) -> StreamingResponse:
    """A page sent as it is made (an import's progress), with every page's headers.
    The browser shows each piece as it arrives: no script needed."""
    response = StreamingResponse(
        chunks, media_type="text/html; charset=utf-8", headers={**_PAGE_HEADERS}
    )
    return finish(request, response)


def redirect(request: Request, path: str, query: QueryPairs | None = None) -> Response:
    """303 See Other to one of the service's pages: after a form, the browser GETs it."""
    return finish(request, RedirectResponse(path_to(request, path, query), status_code=303))


_TITLES = {
    400: "That request could not be understood",
    404: "Not found",
    422: "Something in the request is not valid",
    500: "Something went wrong on our side",
    503: "The service is busy",
}
# Headers of the problem that still mean something on its page.
_KEPT = ("allow", "cache-control", "retry-after", "vary", "www-authenticate")


async def error_page(request: Request, problem: JSONResponse) -> HTMLResponse:
    """The page of a problem, worded by the service's one handler (catalog.errors)."""
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


def mistakes(
    error: pydantic.ValidationError | ValueError,
    labels: Mapping[str, str],
    hints: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """A form's mistakes, for its page: each with the field's name (the page marks that
    field and puts the message beside it) and a sentence that starts with the field's
    label ("Price is not a price: write it like 19.99, with at most two decimals.")."""
    if not isinstance(error, pydantic.ValidationError):  # text that is not the form's
        text = str(error)
        return [{"name": "", "message": f"{text[:1].upper()}{text[1:]}."}]
    found = []
    for item in error.errors(include_url=False, include_input=False):
        names = [str(part) for part in item["loc"] if isinstance(part, str)]
        name = names[0] if names else ""
        label = labels.get(name, "This")
        found.append({"name": name, "message": f"{label} {in_words(item, hints)}."})
    return found


class Redirect(AnswerInstead):
    """Answer with a redirect instead (a guest at a page that needs an account goes to
    the sign-in page; a checkout short of stock goes back to the checkout)."""

    def __init__(self, path: str, query: Mapping[str, str] | None = None) -> None:
        super().__init__(path)
        self.path = path
        self.query = query

    async def answer(self, request: Request) -> Response:
        return redirect(request, self.path, self.query)


class ShowPage(AnswerInstead):
    """Answer with this page instead (a form shown again with what was wrong in it)."""

    def __init__(self, template: str, context: Mapping[str, Any], *, status_code: int) -> None:
        super().__init__(template)
        self.template = template
        self.context = context
        self.status_code = status_code

    async def answer(self, request: Request) -> Response:
        return render(request, self.template, self.context, status_code=self.status_code)


class PageRoute(APIRoute):
    """A route whose problems are pages: a bad id, an unknown product, a database that
    is down are worded by the service's one handler and shown as HTML.

    The route's errors still propagate as errors (catching them here, inside FastAPI's
    handler, would let the request's session commit what the route had written): the
    handler finds this route's renderer on the request's state."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            request.state.show_problem = error_page
            return await handler(request)

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
