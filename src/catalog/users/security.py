"""Password hashing (argon2) and access tokens (JWT, HS256). No database here."""

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import jwt
from anyio import to_thread
from pwdlib import PasswordHash

from catalog.config import Settings
from catalog.errors import ServiceUnavailableError

__all__ = [
    "PasswordHasher",
    "TokenClaims",
    "create_access_token",
    "decode_access_token",
]

_ALGORITHM = "HS256"
_T = TypeVar("_T")


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()  # argon2id with the library's current parameters


@lru_cache
def _hash_of_nobody() -> str:
    return _hasher().hash("a password that no account has")


class PasswordHasher:
    """argon2, off the event loop, a bounded number at a time.

    One argon2 hash costs about 0.1 s of a core and 64 MiB (the library's parameters).
    Each runs in a thread, never on the event loop, and never while a connection is
    checked out (the callers see to that). At most `concurrency` run at once in this
    process, and at most `queue` more wait for a turn; any beyond that are refused at
    once with 503 and Retry-After, so that a flood of sign-ins costs a bounded amount
    of memory and CPU instead of a queue of 64 MiB hashes that starves everything else.
    """

    def __init__(self, *, concurrency: int, queue: int) -> None:
        self._turns = asyncio.Semaphore(concurrency)  # FIFO
        self._admitted = 0
        self._limit = concurrency + queue

    @property
    def admitted(self) -> int:
        """Checks running or waiting for a turn now."""
        return self._admitted

    @classmethod
    def from_settings(cls, settings: Settings) -> "PasswordHasher":
        return cls(
            concurrency=settings.password_hash_concurrency, queue=settings.password_hash_queue
        )

    async def _run(self, work: Callable[..., _T], *args: str) -> _T:
        if self._admitted >= self._limit:
            raise ServiceUnavailableError(
                "Too many passwords are being checked right now; retry in a moment."
            )
        self._admitted += 1
        try:
            async with self._turns:
                # A cancelled request still waits for its thread: the bound stays true.
                return await to_thread.run_sync(work, *args)
        finally:
            self._admitted -= 1

    async def hash(self, password: str) -> str:
        """The argon2 hash of `password`."""
        return await self._run(_hasher().hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        """Whether `password` matches `password_hash`."""
        return await self._run(_hasher().verify, password, password_hash)

    async def verify_of_nobody(self, password: str) -> None:
        """Spend the time a real check takes, so an unknown email answers as slowly as a
        wrong password does."""
        await self._run(_hasher().verify, password, _hash_of_nobody())


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    expires_at: int
    # The account's session generation when the token was made: the token holds while
    # the account's is the same (users.service.end_sessions). 0 in tokens made before
    # there were generations.
    generation: int = 0
    # When the browser signed in (a page session keeps it through every renewal, so
    # that its absolute lifetime is counted from there); else when the token was made.
    signed_in_at: int = 0


def create_access_token(
    user_id: int,
    settings: Settings,
    *,
    audience: str | None = None,
    ttl: int | None = None,
    generation: int = 0,
    signed_in_at: int | None = None,
) -> tuple[str, int]:
    """A signed token for `user_id` and its lifetime in seconds (`ttl`, else the
    access tokens' own). A token with an `audience` is valid only where that audience
    is asked for: the browser's session token is no bearer token of the API."""
    now = int(time.time())
    ttl = settings.access_token_ttl if ttl is None else ttl
    payload: dict[str, str | int] = {"sub": str(user_id), "iat": now, "exp": now + ttl}
    if audience is not None:
        payload["aud"] = audience
    payload["gen"] = generation
    if signed_in_at is not None:
        payload["sat"] = signed_in_at
    token = jwt.encode(payload, settings.signing_secret.get_secret_value(), algorithm=_ALGORITHM)
    return token, ttl


# A user id as create_access_token writes it: ASCII digits, no sign, no leading zero, and
# within BIGINT. str.isdigit() would also take superscripts and Arabic-Indic digits.
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
_MAX_ID = 2**63 - 1


def decode_access_token(
    token: str, settings: Settings, *, audience: str | None = None
) -> TokenClaims:
    """Verify signature, algorithm, expiry and audience; raise jwt.InvalidTokenError if
    anything is off. Without `audience`, a token that names one is refused (PyJWT)."""
    payload = jwt.decode(
        token,
        settings.signing_secret.get_secret_value(),
        algorithms=[_ALGORITHM],  # never "none", never an algorithm the token picks
        audience=audience,
        options={"require": ["exp", "sub", *(["aud"] if audience is not None else [])]},
    )
    subject, expires_at = payload["sub"], payload["exp"]
    if not isinstance(subject, str) or not _USER_ID.fullmatch(subject) or int(subject) > _MAX_ID:
        raise jwt.InvalidTokenError("subject is not a user id")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        raise jwt.InvalidTokenError("exp is not a number")
    if not math.isfinite(expires_at):  # JSON parsers take NaN, and NaN compares as unexpired
        raise jwt.InvalidTokenError("exp is not a finite number")
    generation = payload.get("gen", 0)
    if type(generation) is not int or not 0 <= generation < 2**31:
        raise jwt.InvalidTokenError("gen is not a session generation")
    signed_in_at = payload.get("sat", payload.get("iat", 0))
    if type(signed_in_at) is not int:
        raise jwt.InvalidTokenError("sat is not a time")
    return TokenClaims(
        user_id=int(subject),
        expires_at=int(expires_at),
        generation=generation,
        signed_in_at=signed_in_at,
    )
