"""Rules of the users domain: sign-up, sign-in. Flushes, never commits."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.config import Settings
from catalog.db.errors import ConstraintKind, constraint_violation
from catalog.errors import ConflictError, UnauthorizedError
from catalog.users import repository, security
from catalog.users.models import Role, User
from catalog.users.schemas import MAX_PASSWORD_LENGTH, Token, UserCreate

__all__ = ["authenticate", "create"]


async def create(*, session: AsyncSession, data: UserCreate, role: Role = Role.CUSTOMER) -> User:
    """Register a user; a taken email is a ConflictError."""
    password_hash = await security.hash_password(data.password)
    try:
        return await repository.add(
            session, User(email=data.email, password_hash=password_hash, role=role.value)
        )
    except IntegrityError as error:
        violation = constraint_violation(error, session.get_bind().dialect.name)
        if violation is not None and violation.kind is ConstraintKind.UNIQUE:
            raise ConflictError(f"A user with email {data.email!r} already exists.") from error
        raise


async def authenticate(
    *, session: AsyncSession, email: str, password: str, settings: Settings
) -> Token:
    """A token for valid credentials; UnauthorizedError otherwise, equally slow either way."""
    user = await repository.get_by_email(session, email.strip().lower())
    if len(password) > MAX_PASSWORD_LENGTH:  # no account can have it; do not hash megabytes
        raise UnauthorizedError("The email or the password is wrong.")
    if user is None:
        await security.verify_password_of_nobody(password)
    elif await security.verify_password(password, user.password_hash):
        token, expires_in = security.create_access_token(user.id, settings)
        return Token(access_token=token, expires_in=expires_in)
    raise UnauthorizedError("The email or the password is wrong.")
