"""Opaque, tamper-evident keyset cursors.

A cursor carries the sort key of the last row sent, so the next page starts right
after it with an indexed range scan instead of an OFFSET that reads and discards every
row before it. It is signed (HMAC-SHA256) so that a client cannot forge positions, and
bound to the query it was made for: reusing it with another sort or filter is a 400.
"""

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from catalog.config import Settings
from catalog.errors import CatalogError

__all__ = ["InvalidCursorError", "decode_cursor", "encode_cursor"]


class InvalidCursorError(CatalogError):
    status_code = 400
    slug = "invalid-cursor"


def _key(settings: Settings) -> bytes:
    # A key of its own, derived from the service secret: a cursor is never a token.
    secret = settings.signing_secret.get_secret_value().encode()
    return hmac.new(secret, b"catalog pagination cursor", hashlib.sha256).digest()


def _scope_digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def encode_cursor(position: list[Any], *, scope: str, settings: Settings) -> str:
    """A cursor for the row at `position` (its sort values) of the query `scope`."""
    body = json.dumps({"q": _scope_digest(scope), "p": position}, separators=(",", ":")).encode()
    signature = hmac.new(_key(settings), body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(signature)}"


def decode_cursor(cursor: str, *, scope: str, settings: Settings) -> list[Any]:
    """The position in `cursor`, or InvalidCursorError if it is malformed, forged or for
    another query."""
    try:
        body_part, signature_part = cursor.split(".")
        body = base64.urlsafe_b64decode(body_part + "=" * (-len(body_part) % 4))
        signature = base64.urlsafe_b64decode(signature_part + "=" * (-len(signature_part) % 4))
    except (ValueError, binascii.Error):
        raise InvalidCursorError("The cursor is not one this service made.") from None
    expected = hmac.new(_key(settings), body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(signature, expected):
        raise InvalidCursorError("The cursor is not one this service made.")
    try:
        # NaN and Infinity are not JSON, though Python's parser takes them.
        payload = json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise InvalidCursorError("The cursor is not one this service made.") from None
    if not isinstance(payload, dict):
        raise InvalidCursorError("The cursor is not one this service made.")
    if payload.get("q") != _scope_digest(scope):
        raise InvalidCursorError(
            "The cursor was made for another sort or filter; start again without it."
        )
    position = payload.get("p")
    if not isinstance(position, list):
        raise InvalidCursorError("The cursor is not one this service made.")
    return position
