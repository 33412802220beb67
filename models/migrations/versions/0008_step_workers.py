"""each attempt in a saga's step log records the worker that ran it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 09:00:00

`saga_steps.worker`: the Celery worker host (its `hostname`, such as `pets@myhost`) that ran
the attempt, so that an operator sees where each attempt ran. Attempts logged before this
revision have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("saga_steps", sa.Column("worker", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("saga_steps", "worker")
