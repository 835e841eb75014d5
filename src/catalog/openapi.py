"""What the OpenAPI schema says beyond the routes: operation ids, tags, Swagger UI.

Client generators name their functions after operation ids and their modules after
tags, so both are part of the API: tests/test_openapi.py checks they stay as they are,
and tests/test_generated_client.py generates a client and runs it against a server.
Each problem a route answers is documented there with `catalog.problems.problem_examples`;
the bearer token's security scheme (OAuth2 password flow) is in catalog.users.dependencies.
"""

from typing import Any

from fastapi.routing import APIRoute

__all__ = ["SWAGGER_UI_PARAMETERS", "TAGS", "operation_id"]


def operation_id(route: APIRoute) -> str:
    """The route function's name (`list_products`, `place_order`).

    FastAPI's default adds the path and method (`list_products_products_get`), which
    generated clients then carry as function names, and which change when a path does.
    Names are unique across the app: FastAPI warns of a duplicate, and the tests turn
    warnings into errors.
    """
    return route.name


TAGS: list[dict[str, Any]] = [
    {
        "name": "products",
        "description": "The catalog. Reading needs no account; changing it needs an admin's "
        "token. Each product's `version` is its `ETag`, for `If-Match`.",
    },
    {
        "name": "users",
        "description": "Sign up, and get an access token with the OAuth2 password flow "
        "(the Authorize button of /docs does it with your email and password).",
    },
    {
        "name": "orders",
        "description": "Your orders: placed whole or not at all, at the catalog's prices; "
        "an `Idempotency-Key` makes a retry safe.",
    },
    {
        "name": "health",
        "description": "Liveness and readiness for orchestrators, and this worker's pool.",
    },
    {
        "name": "problems",
        "description": "What each problem `type` of an error body means and what to do about "
        "it; the `type` URIs point here.",
    },
]

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # Not kept across reloads of /docs: Swagger UI would keep the bearer token in the
    # browser's localStorage, where it outlives the tab on a shared computer.
    "persistAuthorization": False,
}
