"""Who is asking: the bearer token (no database) and the user behind it (one query)."""

from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catalog.config import SettingsDep
from catalog.db.session import SessionDep
from catalog.errors import ForbiddenError, UnauthorizedError
from catalog.ratelimits import RateLimits
from catalog.users import repository, security
from catalog.users.models import Role, User

__all__ = ["AdminUser", "CurrentUser", "PasswordHasherDep", "RateLimitsDep", "TokenClaimsDep"]

# auto_error=False: a missing header is our 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An access token from POST /auth/token")


async def _token_claims(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> security.TokenClaims:
    if credentials is None:
        raise UnauthorizedError("This needs a bearer token: POST /auth/token to get one.")
    try:
        return security.decode_access_token(credentials.credentials, settings)
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("The access token has expired; get a new one.") from None
    except jwt.InvalidTokenError:
        raise UnauthorizedError("The access token is not valid.") from None


# Verifying a token opens no session and borrows no connection. HS256 takes
# microseconds, so it runs on the event loop rather than in FastAPI's thread pool.
TokenClaimsDep = Annotated[security.TokenClaims, Depends(_token_claims)]


async def _current_user(claims: TokenClaimsDep, session: SessionDep) -> User:
    user = await repository.get(session, claims.user_id)
    if user is None:  # deleted since the token was issued
        raise UnauthorizedError("The access token's user no longer exists.")
    return user


CurrentUser = Annotated[User, Depends(_current_user)]


async def _admin_user(user: CurrentUser) -> User:
    # The role is read from the database, not the token: a demotion takes effect at once.
    if user.role != Role.ADMIN:
        raise ForbiddenError("This needs an admin account.")
    return user


AdminUser = Annotated[User, Depends(_admin_user)]


# The app's own instances, made by its lifespan. `async` although they never await:
# FastAPI would run a plain `def` in its thread pool.
async def _password_hasher(request: Request) -> security.PasswordHasher:
    return request.app.state.password_hasher  # type: ignore[no-any-return]


PasswordHasherDep = Annotated[security.PasswordHasher, Depends(_password_hasher)]


async def _rate_limits(request: Request) -> RateLimits:
    return request.app.state.rate_limits  # type: ignore[no-any-return]


RateLimitsDep = Annotated[RateLimits, Depends(_rate_limits)]
