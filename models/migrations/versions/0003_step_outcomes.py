"""a step's outcome is its idempotency key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:05:00

A step's local transaction records its outcome in the step log; a unique index on
(saga, step, phase) among outcomes makes that row the step's idempotency key, so the
separate table of processed messages goes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = sa.text("status IN ('succeeded', 'refused')")


def upgrade() -> None:
    op.create_index("uq_saga_steps_outcome", "saga_steps", ["saga_id", "step_index", "phase"],
                    unique=True, postgresql_where=OUTCOMES)
    op.drop_table("processed_messages")


def downgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("reply", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "key", name=op.f("pk_processed_messages")),
    )
    op.drop_index("uq_saga_steps_outcome", table_name="saga_steps", postgresql_where=OUTCOMES)
