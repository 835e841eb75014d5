"""CORS (CATALOG_CORS_*): what a browser front end on another origin may call and read,
answered by Starlette's CORSMiddleware. No origin configured (the default), no CORS
headers at all, and the middleware is not even installed.

The middleware sits outside all of the app's others but the request id's: a preflight
(OPTIONS with Access-Control-Request-Method) is answered there, from configuration
alone, with its request id, and never reaches the routes (whose OPTIONS would be a
405), the body limit, the shutdown deadline or the metrics. Preflights are not counted
in the metrics: they touch neither the routes nor the database, a browser sends one per
URL and method at most every CATALOG_CORS_MAX_AGE seconds, and timed with the requests
they would pull every route's latency quantiles towards zero, under a route template
the router never matched. Every other request passes through to be counted as before.
"""

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from catalog.config import Settings
from catalog.errors import problem_response

__all__ = ["EXPOSED_HEADERS", "add_cors"]

# Response headers a script on another origin may read (beyond the CORS-safelisted
# ones such as Content-Type): tags for conditional requests, links to follow, when to
# retry, the id to quote to an operator, and the token that makes reads see a write.
EXPOSED_HEADERS = ("ETag", "Link", "Location", "Retry-After", "X-Request-ID", "Consistency-Token")


class _CORSMiddleware(CORSMiddleware):
    """Starlette's, with a refused preflight answered as every other error is: a 400
    problem+json with the request id, saying what was refused (Starlette answers a line
    of plain text)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode("latin-1").removeprefix("Disallowed CORS ")
        headers = {
            key: value
            for key, value in response.headers.items()
            if key not in ("content-type", "content-length")
        }
        return problem_response(
            400,
            "bad-request",
            f"The CORS preflight is refused; not allowed here: {refused} "
            "(see CATALOG_CORS_ALLOW_ORIGINS, _METHODS and _HEADERS).",
            headers=headers,
        )


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Answer CORS as the settings say; nothing when no origin is allowed."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        _CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=settings.cors_methods,
        allow_headers=settings.cors_headers,
        expose_headers=EXPOSED_HEADERS,
        # The API authenticates with bearer tokens that a front end sends itself, not
        # with cookies, so browsers need not send credentials; allowing them would let
        # any allowed origin ride on cookies the browser holds for this service (the
        # consistency cookie today, a session tomorrow). With `*` it must be false
        # anyway: the Fetch standard refuses credentials with a wildcard origin.
        allow_credentials=False,
        max_age=settings.cors_max_age,
    )
