"""JSON request bodies read strictly, by the API's routes (`route_class=JSONRoute`).

Python's `json.loads`, which FastAPI calls through Starlette's `Request.json()`, reads a
number with a fraction as a float and lets the last of two equal keys win:

- `"quantity": 0.99999999999999999999` became the float 1.0, then the whole number 1,
  and ordered one; a stock of `99.99999999999999999` was stored as 100;
- `{"quantity": 1, "quantity": 2}` ordered 2, where another parser would take 1;
- `NaN` and `Infinity`, which are not JSON, were read as floats.

Here a number with a fraction or an exponent is a `JSONNumber` (a Decimal holding the
digits as sent), which a whole-number field takes only if it is exactly whole
(`catalog.schemas.WHOLE_NUMBER`); a repeated key and NaN are "JSON decode error"s, the
422 FastAPI gives any body that is not JSON. The route class is FastAPI's documented way
to give routes their own Request class ("Custom Request and APIRoute class").
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from catalog.schemas import JSONNumber

__all__ = ["JSONRoute", "loads"]

# Longer integers are out of every field's range; as JSONNumber they are refused by the
# field's bounds, where int() would refuse past 4,300 digits with a ValueError (a 500).
_LONGEST_INT = 40


def _number(text: str) -> JSONNumber:
    return JSONNumber(text)


def _integer(text: str) -> int | JSONNumber:
    return int(text) if len(text) <= _LONGEST_INT else JSONNumber(text)


def _not_json(constant: str) -> Any:
    raise json.JSONDecodeError(f"{constant} is not JSON", constant, 0)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise json.JSONDecodeError(f"the key {key!r} appears twice", key, 0)
        found[key] = value
    return found


def loads(text: str | bytes) -> Any:
    """`text` as JSON, strictly (see the module); json.JSONDecodeError if it is not."""
    return json.loads(
        text,
        parse_float=_number,
        parse_int=_integer,
        parse_constant=_not_json,
        object_pairs_hook=_unique_keys,
    )


class _StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route whose JSON body is read strictly (see the module)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictRequest(request.scope, request.receive))

        return strict_handler
