"""usernames are unique without regard to case

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00

`Owner` could be signed up beside `owner`. A unique index on lower(username) refuses
that. The unique constraint on the name as written stays: exact lookups (login, a
user's page) use its index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLASHES = sa.text(
    "SELECT string_agg(username, ', ' ORDER BY username) FROM users "
    "GROUP BY lower(username) HAVING count(*) > 1"
)


def upgrade() -> None:
    # Renaming someone's account here would lock them out unawares: an operator decides.
    clashes = op.get_bind().execute(CLASHES).scalars().all()
    if clashes:
        raise RuntimeError("Usernames that differ only in case; rename or delete all but "
                           f"one of each before upgrading: {'; '.join(clashes)}")
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_username_lower", table_name="users")
