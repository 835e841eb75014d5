"""Every problem type the service answers with, and the page behind each `type` URI.

A problem body's `type` is `/problems/{slug}`: `GET /problems/{slug}` explains what the
problem means and what a client should do about it, as HTML to a browser and as JSON
to anything else. `PROBLEM_TYPES` is the one list of slugs; tests/test_openapi.py finds
every slug the code can emit and checks that each is here, and `problem_examples` builds
the OpenAPI examples of a route's problems from it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from catalog.errors import NotFoundError, prefers_html, problem_responses

__all__ = [
    "PROBLEM_TYPES",
    "ProblemType",
    "ProblemTypeRead",
    "invalid",
    "problem_examples",
    "router",
]


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem: what its page says, and its example in the OpenAPI schema."""

    # None: the status varies (http-error covers any status the framework answers).
    status: int | None
    title: str
    meaning: str
    action: str
    example: str  # a `detail` as the service words it


PROBLEM_TYPES: dict[str, ProblemType] = {
    "bad-request": ProblemType(
        400,
        "Bad request",
        "The request could not be read: a body or form that is not well-formed.",
        "Fix the request; sending it again unchanged gives the same answer.",
        "There was an error parsing the body",
    ),
    "request-timeout": ProblemType(
        408,
        "Request timeout",
        "The request's line and headers did not all arrive within the server's client "
        "timeout (CATALOG_CLIENT_TIMEOUT); the connection was closed.",
        "Send the request again, whole; a client that holds connections open slowly is let go.",
        "The request's head did not arrive within 20 s.",
    ),
    "request-header-fields-too-large": ProblemType(
        431,
        "Request header fields too large",
        "The request line and headers together are larger than the server takes "
        "(CATALOG_MAX_HEADER_BYTES, 32 KiB by default); the connection was closed.",
        "Send fewer or smaller headers: most often a cookie or a token that grew.",
        "The request line and headers are over 32,768 bytes.",
    ),
    "invalid-cursor": ProblemType(
        400,
        "Invalid cursor",
        "The `cursor` is malformed, was not made by this service, or was made for another "
        "sort or other filters than this request's.",
        'Pass `next_cursor` or `previous_cursor` (or the `Link` header\'s "next" and "prev" '
        "URLs) exactly as received, with the same filters and sort; start again from the "
        "first page if in doubt.",
        "The cursor is not one this service made.",
    ),
    "invalid-consistency-token": ProblemType(
        400,
        "Invalid consistency token",
        "The `Consistency-Token` header or cookie is not one this service issued.",
        "Send back the token of a previous write as received, or none.",
        "The Consistency-Token is not one this service issued.",
    ),
    "unauthorized": ProblemType(
        401,
        "Unauthorized",
        "The request needs a valid access token, or sign-in credentials were wrong. The "
        "`WWW-Authenticate` header names the scheme (Bearer).",
        "Get a token from `POST /auth/token` (OAuth2 password flow: `username` is the "
        "email) and send it as `Authorization: Bearer <token>`; get a new one when it "
        "expires.",
        "This needs a bearer token: POST /auth/token to get one.",
    ),
    "forbidden": ProblemType(
        403,
        "Forbidden",
        "The account of the token may not do this (changing the catalog needs an admin).",
        "Use an account with the role this needs; retrying with the same token will not help.",
        "This needs an admin account.",
    ),
    "not-found": ProblemType(
        404,
        "Not found",
        "There is no such resource, or it is not yours (another user's order is not found "
        "either). Unknown paths are answered this way too.",
        "Check the id or the path; an extension member such as `unknown` may name the ids.",
        "There is no product with id 42.",
    ),
    "method-not-allowed": ProblemType(
        405,
        "Method not allowed",
        "The path exists, but not with this method.",
        "Use one of the methods the `Allow` header lists.",
        "Method Not Allowed",
    ),
    "not-acceptable": ProblemType(
        406,
        "Not acceptable",
        "The service cannot answer in any media type the `Accept` header allows.",
        "Accept `application/json` (and `application/problem+json` for errors).",
        "Not Acceptable",
    ),
    "conflict": ProblemType(
        409,
        "Conflict",
        "The request conflicts with the data as it is now: a taken SKU or email, stock "
        "short for an order, an order already cancelled, a product that was ordered.",
        "Read the detail (and extension members such as `short_of_stock`), change the "
        "request or the data, then retry; retrying unchanged gives the same answer.",
        "A product with SKU 'BK-0001' already exists.",
    ),
    "unique-violation": ProblemType(
        409,
        "Unique constraint violated",
        "The change would store a value that must be unique but is taken.",
        "Choose another value, or change the existing record instead.",
        "The change violates a unique constraint (uq_products_sku).",
    ),
    "foreign-key-violation": ProblemType(
        409,
        "Reference violated",
        "The change refers to a record that does not exist, or removes one still referred to.",
        "Create the referred record first, or remove what refers to it.",
        "The change violates a foreign key constraint (fk_order_lines_product_id_products).",
    ),
    "check-violation": ProblemType(
        409,
        "Check constraint violated",
        "The change would store a value the database refuses (a negative stock, for one).",
        "Change the value; the detail names the constraint.",
        "The change violates a check constraint (ck_products_stock_non_negative).",
    ),
    "not-null-violation": ProblemType(
        409,
        "Required value missing",
        "The change would leave a required value empty.",
        "Send a value for it.",
        "The change violates a not null constraint (products.name).",
    ),
    "precondition-failed": ProblemType(
        412,
        "Precondition failed",
        "`If-Match` names a version the product is no longer at: someone changed it since "
        "you read it.",
        "GET the product again, apply your change to what it is now, and retry with its "
        "new `ETag` in `If-Match`.",
        'Product 42 is at version 4 ("4"), which If-Match does not name; fetch it again and retry.',
    ),
    "payload-too-large": ProblemType(
        413,
        "Payload too large",
        "The request body is larger than this service accepts (CATALOG_MAX_BODY_BYTES).",
        "Send a smaller body (fewer order lines, a shorter description).",
        "The request body is larger than the limit of 65536 bytes.",
    ),
    "unsupported-media-type": ProblemType(
        415,
        "Unsupported media type",
        "The body is in a media type this route does not read.",
        "Send JSON (`Content-Type: application/json`), or a form to `POST /auth/token`.",
        "Unsupported Media Type",
    ),
    "validation-error": ProblemType(
        422,
        "Validation error",
        "A value in the path, query, headers or body is not valid: `errors` lists each "
        "bad value with where it is (`loc`), what is wrong (`msg`) and a code (`type`).",
        "Fix the values `errors` names; the schema at /openapi.json says what each takes.",
        "The request is not valid: price: must be a string with up to 10 digits and 2 "
        'decimals, such as "19.99" (not a JSON number, which clients round as floats).',
    ),
    "unprocessable": ProblemType(
        422,
        "Unprocessable request",
        "Each value is valid alone, but together they cannot be accepted (a cursor and an "
        "offset, an `Idempotency-Key` reused for another order); `errors` names them.",
        "Change the request as the detail says.",
        "Use either cursor or offset, not both.",
    ),
    "too-many-requests": ProblemType(
        429,
        "Too many requests",
        "Too many sign-ins or sign-ups from this address or for this account.",
        "Wait the seconds that `Retry-After` gives, then retry.",
        "Too many attempts (5, per minute); retry in 42 s.",
    ),
    "internal-error": ProblemType(
        500,
        "Internal error",
        "The service failed to handle the request. Nothing about the cause is revealed; "
        "the operator's log has it, under the request's id.",
        "Retry later; if it persists, report the `request_id` to the operator.",
        "The server failed to handle this request.",
    ),
    "service-unavailable": ProblemType(
        503,
        "Service unavailable",
        "The service is too busy to take this request now (too many passwords being "
        "checked at once).",
        "Retry after the seconds that `Retry-After` gives.",
        "Too many passwords are being checked right now; retry in a moment.",
    ),
    "database-unavailable": ProblemType(
        503,
        "Database unavailable",
        "The database did not answer in time, or no connection was free.",
        "Retry after the seconds that `Retry-After` gives; nothing of the request was saved.",
        "The database cannot serve this request right now; retry shortly.",
    ),
    "shutting-down": ProblemType(
        503,
        "Shutting down",
        "The service is stopping and cut this request before it finished; nothing of it was saved.",
        "Retry it (on a new connection): another worker or the restarted service takes it.",
        "The service is shutting down and stopped this request before it finished; "
        "nothing of it was saved. Retry it.",
    ),
    "http-error": ProblemType(
        None,
        "HTTP error",
        "An HTTP error with no more specific type; `status` says which.",
        "Read `status` and `detail`.",
        "Not Implemented",
    ),
}

# What an example's `request_id` looks like (catalog.requestid makes them).
_EXAMPLE_REQUEST_ID = "5f0c6a4fd2b94f1e9d2a7b3c8e1f6a90"
_EXAMPLE_ERRORS = {
    "validation-error": [
        {
            "loc": ["body", "price"],
            "msg": 'must be a string with up to 10 digits and 2 decimals, such as "19.99" '
            "(not a JSON number, which clients round as floats)",
            "type": "value_error",
        }
    ],
    "unprocessable": [
        {"loc": ["query", "offset"], "msg": "not with cursor", "type": "cursor_and_offset"}
    ],
}


def _type_uri(slug: str) -> str:
    # As catalog.errors writes it in every problem body.
    return f"/problems/{slug}"


def invalid(loc: Sequence[str | int], msg: str, code: str) -> dict[str, Any]:
    """The members of a validation-error example with one bad value at `loc`, worded as
    errors.handle_error words it: `problem_examples(validation_error=invalid(...))`."""
    where = ".".join(str(part) for part in loc[1:] if not isinstance(part, int))
    return {
        "detail": f"The request is not valid: {where}: {msg}.",
        "errors": [{"loc": list(loc), "msg": msg, "type": code}],
    }


def problem_examples(*slugs: str, **members: str | Mapping[str, Any]) -> dict[int | str, Any]:
    """`responses=` entries for a route that answers these problem types: each status's
    model and description (errors.problem_responses), with one example of each type.

    A keyword names a type with `_` for `-` and gives this route's wording of it: the
    `detail`, or a mapping of members (detail and extension members) for the example.
    """
    wanted: dict[str, Mapping[str, Any]] = {slug: {} for slug in slugs} | {
        name.replace("_", "-"): value if isinstance(value, Mapping) else {"detail": value}
        for name, value in members.items()
    }
    by_status: dict[int, dict[str, Any]] = {}
    for slug, overrides in wanted.items():
        problem = PROBLEM_TYPES[slug]  # KeyError: add the type to PROBLEM_TYPES first
        if problem.status is None:
            raise ValueError(f"{slug} has no status of its own; it has no example")
        value: dict[str, Any] = {
            "type": _type_uri(slug),
            "title": HTTPStatus(problem.status).phrase,
            "status": problem.status,
            "detail": problem.example,
        }
        if slug in _EXAMPLE_ERRORS:
            value["errors"] = _EXAMPLE_ERRORS[slug]
        value |= overrides
        value["request_id"] = _EXAMPLE_REQUEST_ID
        by_status.setdefault(problem.status, {})[slug] = {"summary": problem.title, "value": value}
    responses = problem_responses(*sorted(by_status))
    for status, examples in by_status.items():
        # errors.install_error_handling moves it to application/problem+json.
        responses[status]["content"] = {"application/json": {"examples": examples}}
    return responses


class ProblemTypeRead(BaseModel):
    """What a problem type means and what to do about it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/invalid-cursor",
                    "slug": "invalid-cursor",
                    "title": PROBLEM_TYPES["invalid-cursor"].title,
                    "status": 400,
                    "meaning": PROBLEM_TYPES["invalid-cursor"].meaning,
                    "action": PROBLEM_TYPES["invalid-cursor"].action,
                }
            ]
        }
    )

    type: str = Field(description="The URI that problem bodies carry in `type`")
    slug: str = Field(examples=["invalid-cursor"])
    title: str = Field(examples=["Invalid cursor"])
    status: int | None = Field(description="The status it comes with; null if it varies")
    meaning: str
    action: str = Field(description="What a client should do about it")


router = APIRouter(prefix="/problems", tags=["problems"])

Slug = Annotated[
    str,
    Path(
        max_length=100,
        description="The last segment of a problem's `type`",
        examples=["invalid-cursor"],
    ),
]


def _page(slug: str, problem: ProblemType) -> str:
    status = f"{problem.status} {HTTPStatus(problem.status).phrase}" if problem.status else "any"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(problem.title)} · catalog</title></head>\n"
        f"<body><h1>{escape(problem.title)}</h1>\n"
        f"<p>Problem type <code>{escape(_type_uri(slug))}</code>, status {escape(status)}.</p>\n"
        f"<h2>What it means</h2><p>{escape(problem.meaning)}</p>\n"
        f"<h2>What to do</h2><p>{escape(problem.action)}</p>\n"
        '<p>Every error of this API is <a href="https://www.rfc-editor.org/rfc/rfc9457">'
        "RFC 9457</a> problem+json; quote its <code>request_id</code> to an operator.</p>\n"
        "</body></html>\n"
    )


@router.get(
    "/{slug}",
    response_model=ProblemTypeRead,
    responses={
        200: {
            "description": "The problem type: HTML if `Accept` prefers it, else JSON",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problem_examples(
            not_found="There is no problem type no-such.",
            validation_error=invalid(
                ("path", "slug"), "String should have at most 100 characters", "string_too_long"
            ),
        ),
    },
)
async def read_problem_type(slug: Slug, request: Request) -> HTMLResponse | JSONResponse:
    """What a problem `type` means and what to do about it; no database is involved."""
    problem = PROBLEM_TYPES.get(slug)
    if problem is None:
        # Not echoed: what a client put in the URL is not repeated back to it.
        raise NotFoundError("There is no problem type by that name; see GET /openapi.json.")
    # The same URL answers two media types: caches must key on Accept. nosniff: a
    # browser takes each for what its Content-Type says, never for something else.
    headers = {"Vary": "Accept", "X-Content-Type-Options": "nosniff"}
    if prefers_html(request.headers.get("accept", "")):
        return HTMLResponse(_page(slug, problem), headers=headers)
    body = ProblemTypeRead(
        type=_type_uri(slug),
        slug=slug,
        title=problem.title,
        status=problem.status,
        meaning=problem.meaning,
        action=problem.action,
    )
    return JSONResponse(body.model_dump(), headers=headers)
