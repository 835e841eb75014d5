"""One error tree and one handler: every error response is RFC 9457 problem+json."""

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.asgi import WatchedSend
from catalog.db.errors import ConstraintKind, constraint_violation, is_unavailable, violates
from catalog.requestid import current_request_id

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "AnswerInstead",
    "CatalogError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "PreconditionFailedError",
    "Problem",
    "ServiceUnavailableError",
    "ShowProblem",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnhandledErrorMiddleware",
    "ValidationError",
    "ValidationProblem",
    "conflict_or_error",
    "install_error_handling",
    "prefers_html",
    "problem_response",
    "problem_responses",
]

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class CatalogError(Exception):
    """Base of the domain errors; each subclass is one kind of problem."""

    status_code: int = 500
    slug: str = "internal-error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        # Extension members of the problem (RFC 9457 section 3.2), e.g. which products.
        self.extra = extra


class UnauthorizedError(CatalogError):
    status_code = 401
    slug = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(CatalogError):
    status_code = 403
    slug = "forbidden"


class NotFoundError(CatalogError):
    status_code = 404
    slug = "not-found"


class ConflictError(CatalogError):
    status_code = 409
    slug = "conflict"


class ValidationError(CatalogError):
    """Input that is well-formed but cannot be accepted (422)."""

    status_code = 422
    slug = "unprocessable"


class PreconditionFailedError(CatalogError):
    status_code = 412
    slug = "precondition-failed"


class ServiceUnavailableError(CatalogError):
    status_code = 503
    slug = "service-unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class TooManyRequestsError(CatalogError):
    status_code = 429
    slug = "too-many-requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def conflict_or_error(
    error: sa_exc.DBAPIError, dialect_name: str, kind: ConstraintKind, detail: str
) -> Exception:
    """A ConflictError saying `detail` if `error` violated a constraint of `kind`, else
    `error` itself: what a service raises (`from error`) when a write meets a constraint."""
    return ConflictError(detail) if violates(error, dialect_name, kind) else error


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI reference that identifies the kind of problem")
    title: str = Field(description="Short summary of the kind of problem")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong in this occurrence")
    request_id: str | None = Field(
        default=None,
        description="The request's id (also in the X-Request-ID header): quote it to an "
        "operator, who finds the request's log lines with it",
    )


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the bad value is: body, query, path, header")
    msg: str
    type: str


class ValidationProblem(Problem):
    """A problem detail for input that failed validation, one entry per bad value."""

    errors: list[FieldError]


def _problem_type(slug: str) -> str:
    # Relative URI references, resolved against the service's own address.
    return f"/problems/{slug}"


def problem_response(
    status: int,
    slug: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": _problem_type(slug),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
        # Quoted by a user, it finds the request's log lines (and a 500's traceback).
        "request_id": current_request_id(),
    }
    # An error says nothing of what the resource is a moment later (a 404 until the
    # product is created, a 503 until the database is back): no cache may keep it, not
    # even one that keeps a 404 without being told (RFC 9111 section 4.2.2).
    # nosniff: a browser reads the body as the JSON it says it is, whatever a client
    # managed to put into its detail.
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


# A body of thousands of unknown keys is one error each: listing them all made a 1 MB
# request cost a second of CPU and an 11 MB answer. The first ones say what is wrong.
MAX_LISTED_ERRORS = 50


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors()[:MAX_LISTED_ERRORS]:
        message = str(error["msg"])
        if error["type"] == "json_invalid" and (error.get("ctx") or {}).get("error"):
            # What the parser found ("Expecting ',' delimiter", "the key 'quantity'
            # appears twice"): the parser's words about the client's own body.
            message = f"{message}: {error['ctx']['error']}"
        errors.append(
            {
                "loc": [part if isinstance(part, int) else str(part) for part in error["loc"]],
                "msg": message,
                "type": str(error["type"]),
            }
        )
    return errors


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    # Each method of a path is a route of its own, and the 405 names only the first
    # route that matched the path; RFC 9110 wants every method the path takes. Asked of
    # the router for each method (public `matches`, whatever the routes' nesting).
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if "GET" in methods:
        methods.add("HEAD")  # catalog.head answers it
    return ", ".join(sorted(methods))


def _constraint_problem(exc: sa_exc.DBAPIError, request: Request) -> JSONResponse | None:
    # A violation that the service layer did not translate, e.g. one raised at commit.
    violation = constraint_violation(exc, request.app.state.engine.dialect.name)
    if violation is None:
        return None
    if violation.kind is ConstraintKind.OTHER:
        return problem_response(409, "conflict", "The change conflicts with data already stored.")
    what = f" ({violation.constraint})" if violation.constraint else ""
    return problem_response(
        409,
        f"{violation.kind.value.replace('_', '-')}-violation",
        f"The change violates a {violation.kind.value.replace('_', ' ')} constraint{what}.",
    )


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "<unmatched>"))


def prefers_html(accept: str) -> bool:
    """Whether `Accept` ranks text/html above JSON: a browser's does, `*/*` does not."""
    html = json = 0.0
    for item in accept.lower().split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media == "text/html":
            html = max(html, quality)
        elif media in ("application/json", "application/*", "*/*"):
            json = max(json, quality)
    return html > json


class AnswerInstead(Exception):  # noqa: N818 (an answer, not an error)
    """Raised by a route to answer with another response (a form shown again, a
    redirect) after the request's session has rolled back what the route wrote:
    returning it instead would let the session commit."""

    async def answer(self, request: Request) -> Response:
        raise NotImplementedError


# Where a route that shows its problems its own way (the pages, as HTML) puts its
# renderer: `request.state.show_problem(request, problem) -> Response`.
ShowProblem = Callable[[Request, JSONResponse], Awaitable[Response]]


async def handle_error(request: Request, exc: Exception) -> Response:
    """The one handler of the service: any exception becomes a problem (problem+json,
    or the route's own rendering of it), or the answer an AnswerInstead carries.

    A problem of a route that has no rendering of its own (an API route, a path no
    route matches, a method it does not take) is a page for a browser, which asks for
    HTML first, through the app's `problem_page` (the pages' error page): problem+json
    for everyone else, as the API promises."""
    if isinstance(exc, AnswerInstead):
        return await exc.answer(request)
    problem = _problem(request, exc)
    show: ShowProblem | None = getattr(request.state, "show_problem", None)
    if show is None and prefers_html(request.headers.get("accept", "")):
        show = getattr(request.app.state, "problem_page", None)
        problem.headers["Vary"] = "Accept"
    return problem if show is None else await show(request, problem)


def _problem(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, CatalogError):
        return problem_response(
            exc.status_code, exc.slug, exc.detail, headers=exc.headers, **exc.extra
        )
    if isinstance(exc, RequestValidationError):
        errors = _validation_errors(exc)
        unlisted = len(exc.errors()) - len(errors)
        if len(errors) == 1 and not unlisted:
            # One bad value: its message (the one in `errors`) in the detail too, after
            # the field it names (list positions left out: "body", not "body.1").
            loc = errors[0]["loc"]
            names = [str(part) for part in loc[1:] if not isinstance(part, int)]
            where = ".".join(names) or (str(loc[0]) if loc else "request")
            detail = f"The request is not valid: {where}: {errors[0]['msg']}."
        else:
            more = f" ({unlisted} more not listed)" if unlisted > 0 else ""
            detail = f"The request is not valid; see `errors` for each bad value{more}."
        return problem_response(422, "validation-error", detail, errors=errors)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return problem_response(exc.status_code, slug, detail, headers=headers)
    if isinstance(exc, sa_exc.DBAPIError) and (
        constraint_response := _constraint_problem(exc, request)
    ):
        return constraint_response
    if is_unavailable(exc):
        # The route's template, not the path the client wrote (its values, its control
        # characters), and the error's first line: the SQL that SQLAlchemy appends on
        # the next lines is in the traceback of a 500, not in this warning.
        logger.warning(
            "database unavailable for %s %s: %s",
            request.method,
            _route_template(request),
            str(exc).split("\n", 1)[0],
        )
        return problem_response(
            503,
            "database-unavailable",
            "The database cannot serve this request right now; retry shortly.",
            headers={"Retry-After": "1"},
        )
    logger.error("unhandled error in %s %s", request.method, _route_template(request), exc_info=exc)
    return problem_response(500, "internal-error", "The server failed to handle this request.")


class UnhandledErrorMiddleware:
    """Answer an error that no handler took with the 500 problem, here.

    Starlette would answer it too, then raise it again to the server so that the
    server logs it; uvicorn then closes the keep-alive connection without a
    `Connection: close`, and a client's next request on it fails. `handle_error` has
    logged the traceback already, so the error stops here and the connection lives on.
    An error after the response started (a stream) still goes to the server, which
    must cut the connection: the client cannot be told otherwise.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if watched.started:
                raise
            response = await handle_error(Request(scope), exc)
            await response(scope, receive, send)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problems a route can answer with."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationProblem if status == 422 else Problem
        responses[status] = {"model": model, "description": HTTPStatus(status).phrase}
    return responses


def _problems_as_problem_json(schema: dict[str, Any]) -> dict[str, Any]:
    # FastAPI documents every `responses=` model as application/json; error bodies are
    # sent as application/problem+json, so say that instead.
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status[:1] in ("4", "5") and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return schema


def install_error_handling(app: FastAPI) -> None:
    """Route every exception through `handle_error` and document it in the OpenAPI schema."""
    # Every class but Exception is handled inside the app and the error ends there;
    # Exception (the 500s) is handled by Starlette's outermost middleware, which also
    # re-raises it so the server logs the traceback.
    for exc_class in (
        AnswerInstead,
        CatalogError,
        StarletteHTTPException,
        RequestValidationError,
        sa_exc.SQLAlchemyError,
        OSError,
        TimeoutError,
        Exception,
    ):
        app.add_exception_handler(exc_class, handle_error)

    # FastAPI's own, which passes every schema argument the app was given (tags,
    # servers...) and caches the schema until the routes change.
    build = app.openapi
    documented: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal documented
        schema = build()
        if schema is not documented:  # one FastAPI has just built
            documented = _problems_as_problem_json(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
