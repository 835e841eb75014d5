"""Rules of the users domain: sign-up, sign-in. Flushes, never commits."""

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.config import Settings
from catalog.db.errors import ConstraintKind
from catalog.db.session import Reader
from catalog.errors import UnauthorizedError, conflict_or_error
from catalog.users import repository, security
from catalog.users.models import Role, User
from catalog.users.schemas import MAX_PASSWORD_LENGTH, Token, UserCreate, canonical_email

__all__ = [
    "Account",
    "account_key",
    "authenticate",
    "create",
    "end_sessions",
    "session_ended",
    "standing",
    "verify_credentials",
]


@dataclass(frozen=True, slots=True)
class Account:
    """Whom credentials opened: the account's id, and its role and session generation
    at that moment."""

    id: int
    role: Role
    generation: int = 0


async def standing(reader: Reader, claims: security.TokenClaims) -> Account | None:
    """The account a token's claims name, if its sessions have not ended since the token
    was made (its generation is the token's), else None; one indexed read."""
    row = await repository.standing(reader, claims.user_id)
    if row is None or int(row.session_generation) != claims.generation:
        return None
    return Account(id=claims.user_id, role=Role(row.role), generation=claims.generation)


def session_ended(user: User, claims: security.TokenClaims) -> bool:
    """Whether the sessions of `user` have ended since the token of `claims` was made."""
    return user.session_generation != claims.generation


async def end_sessions(*, session: AsyncSession, user_id: int) -> None:
    """End every session of the account: each browser's, each access token, the
    operator page's (signing out; an account whose password or role changes too)."""
    await repository.next_generation(session, user_id)


def account_key(email: str) -> str:
    """Whose account a sign-in names, for per-account limits: its canonical email, or the
    name as typed (lower-cased) if it is no address at all."""
    try:
        return canonical_email(email)
    except ValueError:
        return email.strip().lower()


async def create(
    *,
    session: AsyncSession,
    hasher: security.PasswordHasher,
    data: UserCreate,
    role: Role = Role.CUSTOMER,
) -> User:
    """Register a user; a taken email is a ConflictError."""
    # Hashed before the session's first statement: no connection is held meanwhile.
    password_hash = await hasher.hash(data.password)
    try:
        return await repository.add(
            session, User(email=data.email, password_hash=password_hash, role=role.value)
        )
    except IntegrityError as error:
        raise conflict_or_error(
            error,
            session.get_bind().dialect.name,
            ConstraintKind.UNIQUE,
            f"A user with email {data.email!r} already exists.",
        ) from error


async def verify_credentials(
    *, reader: Reader, hasher: security.PasswordHasher, email: str, password: str
) -> Account:
    """The account these credentials open; UnauthorizedError otherwise,
    equally slow either way. Both sign-ins come here: the API's token, the pages' cookie.

    The account is read on a connection borrowed for that one statement: the password
    is checked (0.1 s of CPU) with no connection held.
    """
    account = await repository.credentials(reader, account_key(email))
    if len(password) > MAX_PASSWORD_LENGTH:  # no account can have it; do not hash megabytes
        raise UnauthorizedError("The email or the password is wrong.")
    if account is None:
        await hasher.verify_of_nobody(password)
    elif await hasher.verify(password, account.password_hash):
        return Account(
            id=int(account.id),
            role=Role(account.role),
            generation=int(account.session_generation),
        )
    raise UnauthorizedError("The email or the password is wrong.")


async def authenticate(
    *,
    reader: Reader,
    hasher: security.PasswordHasher,
    email: str,
    password: str,
    settings: Settings,
) -> Token:
    """A token for valid credentials; UnauthorizedError otherwise (verify_credentials)."""
    account = await verify_credentials(reader=reader, hasher=hasher, email=email, password=password)
    token, expires_in = security.create_access_token(
        account.id, settings, generation=account.generation
    )
    return Token(access_token=token, expires_in=expires_in)
