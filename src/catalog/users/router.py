"""HTTP routes of users and tokens."""

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from catalog.config import SettingsDep
from catalog.db.session import ReaderDep, SessionDep
from catalog.jsonbody import JSONRoute
from catalog.links import link_to
from catalog.problems import problem_examples
from catalog.schemas import NO_CONTROL_CHARACTERS
from catalog.users import service as user_service
from catalog.users.dependencies import CurrentUser, PasswordHasherDep, RateLimitsDep
from catalog.users.schemas import Token, UserCreate, UserRead

__all__ = ["router"]

router = APIRouter(tags=["users"], route_class=JSONRoute)


@router.post(
    "/users",
    status_code=201,
    responses=problem_examples(
        "payload-too-large",
        "too-many-requests",
        "service-unavailable",
        "database-unavailable",
        conflict="A user with email 'you@example.com' already exists.",
        validation_error={
            "detail": "The request is not valid: email: value is not a valid email address: "
            "The part after the @-sign is a special-use or reserved name that cannot be used "
            "with email.",
            "errors": [
                {
                    "loc": ["body", "email"],
                    "msg": "value is not a valid email address: The part after the @-sign is "
                    "a special-use or reserved name that cannot be used with email.",
                    "type": "value_error",
                }
            ],
        },
    ),
)
async def create_user(
    data: UserCreate,
    session: SessionDep,
    hasher: PasswordHasherDep,
    rate_limits: RateLimitsDep,
    request: Request,
    response: Response,
) -> UserRead:
    """Sign up as a customer; 409 if the email is taken. The password is never returned.
    429 with Retry-After past the sign-up rate limits (per client address and email)."""
    await rate_limits.sign_up(request, data.email)
    user = await user_service.create(session=session, hasher=hasher, data=data)
    response.headers["Location"] = link_to(request, "read_me")
    return UserRead.model_validate(user)


@router.post(
    "/auth/token",
    responses=problem_examples(
        "too-many-requests",
        "service-unavailable",
        "database-unavailable",
        unauthorized="The email or the password is wrong.",
        validation_error={
            "detail": "The request is not valid: username: Field required.",
            "errors": [{"loc": ["body", "username"], "msg": "Field required", "type": "missing"}],
        },
    ),
)
async def issue_token(
    # No control characters: the email is looked up in the database, and PostgreSQL
    # cannot even compare a string with a NUL in it.
    username: Annotated[
        str,
        Form(
            min_length=1,
            max_length=254,
            pattern=NO_CONTROL_CHARACTERS,
            description="The account's email (OAuth2 calls it username)",
            examples=["you@example.com"],
        ),
    ],
    password: Annotated[
        str,
        Form(
            min_length=1,
            max_length=1024,
            description="The account's password",
            examples=["correct horse battery staple"],
        ),
    ],
    reader: ReaderDep,
    hasher: PasswordHasherDep,
    rate_limits: RateLimitsDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    grant_type: Annotated[
        str,
        Form(
            pattern="^password$",
            description="The OAuth2 grant: only `password`",
            examples=["password"],
        ),
    ] = "password",
) -> Token:
    """OAuth2 password flow (form-encoded): `username` is the email. 401 for wrong
    credentials, as slow for an unknown email as for a wrong password; 429 with
    Retry-After past the sign-in rate limits (per client address and account)."""
    # A token is a secret: no cache may keep it (RFC 6749 section 5.1).
    response.headers["Cache-Control"] = "no-store"
    await rate_limits.sign_in(request, user_service.account_key(username))
    return await user_service.authenticate(
        reader=reader, hasher=hasher, email=username, password=password, settings=settings
    )


@router.get("/users/me", responses=problem_examples("unauthorized", "database-unavailable"))
async def read_me(user: CurrentUser) -> UserRead:
    """The account of the bearer token."""
    return UserRead.model_validate(user)
