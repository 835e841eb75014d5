"""users.session_generation: signing out ends a session on the server

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 21:00:00

A browser's session, the API's access tokens and the operator page's token name the
account's session generation when they are made; a request whose token names another
generation than the account has now is not signed in. Signing out adds one to it, which
ends every session of the account at once. Existing accounts start at 0, as tokens made
before this revision are read.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on every database, SQLite included (3.35 drops columns): a batch
# operation would rebuild the SQLite table and lose revision 0005's triggers on it.


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("users", "session_generation")
