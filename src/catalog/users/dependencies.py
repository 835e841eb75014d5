"""Who is asking: the bearer token (no database) and the user behind it (one query)."""

from typing import Annotated

import jwt
from fastapi import Depends, Request, Response
from fastapi.security import OAuth2PasswordBearer

from catalog.caching import keep_private
from catalog.config import SettingsDep
from catalog.db.session import SessionDep
from catalog.errors import ForbiddenError, UnauthorizedError
from catalog.ratelimits import RateLimits
from catalog.users import repository, security, service
from catalog.users.models import Role, User

__all__ = ["AdminUser", "CurrentUser", "PasswordHasherDep", "RateLimitsDep", "TokenClaimsDep"]

# The OAuth2 password flow in the schema: Swagger UI's Authorize button asks for the email
# and password and gets the token itself. The token URL is relative, so it resolves
# under the service's root path (behind a proxy at /api, to /api/auth/token).
# auto_error=False: a missing header is our 401 problem, not FastAPI's.
_bearer = OAuth2PasswordBearer(
    tokenUrl="auth/token",
    scheme_name="OAuth2",
    description="An access token from POST /auth/token (`username` is the email), sent as "
    "`Authorization: Bearer <token>`",
    auto_error=False,
)


async def _token_claims(
    settings: SettingsDep, token: Annotated[str | None, Depends(_bearer)]
) -> security.TokenClaims:
    # "Bearer" with nothing after it counts as no token, as it always has.
    if not token:
        raise UnauthorizedError("This needs a bearer token: POST /auth/token to get one.")
    try:
        return security.decode_access_token(token, settings)
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("The access token has expired; get a new one.") from None
    except jwt.InvalidTokenError:
        raise UnauthorizedError("The access token is not valid.") from None


# Verifying a token opens no session and borrows no connection. HS256 takes
# microseconds, so it runs on the event loop rather than in FastAPI's thread pool.
TokenClaimsDep = Annotated[security.TokenClaims, Depends(_token_claims)]


async def _current_user(claims: TokenClaimsDep, session: SessionDep, response: Response) -> User:
    # What a signed-in user is answered depends on who asks: marked here once, for every
    # route that takes the user (or an admin), so that no cache keeps it for another.
    keep_private(response)
    user = await repository.get(session, claims.user_id)
    if user is None:  # deleted since the token was issued
        raise UnauthorizedError("The access token's user no longer exists.")
    if service.session_ended(user, claims):
        raise UnauthorizedError("The account has signed out since this token was made.")
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
