"""Every query on the users table."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.users.models import User

__all__ = ["add", "get", "get_by_email"]


async def get(session: AsyncSession, user_id: int) -> User | None:
    """The user with this id, or None."""
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (lower-cased) email, or None."""
    return (await session.scalars(select(User).where(User.email == email))).one_or_none()


async def add(session: AsyncSession, user: User) -> User:
    """Insert `user` now, so that a taken email surfaces here."""
    session.add(user)
    await session.flush()
    return user
