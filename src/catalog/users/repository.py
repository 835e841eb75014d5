"""Every query on the users table."""

from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.session import Reader
from catalog.users.models import User

__all__ = ["add", "credentials", "get", "get_by_email", "next_generation", "standing"]


async def get(session: AsyncSession, user_id: int) -> User | None:
    """The user with this id, or None."""
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (canonical) email, or None."""
    return (await session.scalars(select(User).where(User.email == email))).one_or_none()


_USERS = User.__table__
_CREDENTIALS = select(
    _USERS.c.id, _USERS.c.password_hash, _USERS.c.role, _USERS.c.session_generation
).where(_USERS.c.email == bindparam("email"))


async def credentials(reader: Reader, email: str) -> Row[Any] | None:
    """The id, password hash, role and session generation of the user with this
    (canonical) email, or None: read
    on a connection that goes back to the pool before the password is checked."""
    return await reader.one_or_none(_CREDENTIALS, {"email": email})


_STANDING = select(_USERS.c.role, _USERS.c.session_generation).where(
    _USERS.c.id == bindparam("user_id")
)


async def standing(reader: Reader, user_id: int) -> Row[Any] | None:
    """The role and session generation of the user with this id, or None: one indexed
    read on a connection that goes back to the pool at once (a page that then reads a
    large upload holds none meanwhile)."""
    return await reader.one_or_none(_STANDING, {"user_id": user_id})


async def next_generation(session: AsyncSession, user_id: int) -> None:
    """Add one to the user's session generation, in the session's transaction."""
    statement = (
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
    )
    await session.execute(statement)


async def add(session: AsyncSession, user: User) -> User:
    """Insert `user` now, so that a taken email surfaces here."""
    session.add(user)
    await session.flush()
    return user
