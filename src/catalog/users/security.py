"""Password hashing (argon2) and access tokens (JWT, HS256). No database here."""

import time
from dataclasses import dataclass
from functools import lru_cache

import jwt
from anyio import to_thread
from pwdlib import PasswordHash

from catalog.config import Settings

__all__ = [
    "TokenClaims",
    "create_access_token",
    "decode_access_token",
    "hash_password",
    "verify_password",
    "verify_password_of_nobody",
]

_ALGORITHM = "HS256"


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()  # argon2id with the library's current parameters


@lru_cache
def _hash_of_nobody() -> str:
    return _hasher().hash("a password that no account has")


# argon2 costs ~0.1 s of CPU on purpose: run it in a thread, not on the event loop.
async def hash_password(password: str) -> str:
    """The argon2 hash of `password`."""
    return await to_thread.run_sync(_hasher().hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash`."""
    return await to_thread.run_sync(_hasher().verify, password, password_hash)


async def verify_password_of_nobody(password: str) -> None:
    """Spend the time a real check takes, so an unknown email answers as slowly as a
    wrong password does."""
    await to_thread.run_sync(_hasher().verify, password, _hash_of_nobody())


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    expires_at: int


def create_access_token(user_id: int, settings: Settings) -> tuple[str, int]:
    """A signed token for `user_id` and its lifetime in seconds."""
    now = int(time.time())
    ttl = settings.access_token_ttl
    payload = {"sub": str(user_id), "iat": now, "exp": now + ttl}
    token = jwt.encode(payload, settings.signing_secret.get_secret_value(), algorithm=_ALGORITHM)
    return token, ttl


def decode_access_token(token: str, settings: Settings) -> TokenClaims:
    """Verify signature, algorithm and expiry; raise jwt.InvalidTokenError if anything is off."""
    payload = jwt.decode(
        token,
        settings.signing_secret.get_secret_value(),
        algorithms=[_ALGORITHM],  # never "none", never an algorithm the token picks
        options={"require": ["exp", "sub"]},
    )
    subject = payload["sub"]
    if not isinstance(subject, str) or not subject.isdigit() or len(subject) > 19:
        raise jwt.InvalidTokenError("subject is not a user id")
    return TokenClaims(user_id=int(subject), expires_at=int(payload["exp"]))
