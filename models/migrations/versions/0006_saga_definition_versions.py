"""each saga records the version of the definition it started with

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 05:00:00

`sagas.definition_version`: a fingerprint of the saga's definition (its steps' names and
tasks, in order) when the saga started, so that an operator sees which sagas a deploy that
changes a definition would leave waiting on steps it no longer has. Sagas started before
this revision have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sagas", sa.Column("definition_version", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("sagas", "definition_version")
