"""a saga refused at its first step ends refused, not compensated

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 07:00:00

A saga whose first step refused ended `compensated` though no step had done any work and
nothing was undone; it now ends `refused`. The sagas that ended so before this revision
are told apart by where they stopped: at their first step, acting, with a refusal's name.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_STEP_REFUSALS = ("current_step = 0 AND phase = 'action' AND error_code IS NOT NULL")


def upgrade() -> None:
    op.execute("UPDATE sagas SET status = 'refused' "
               f"WHERE status = 'compensated' AND {FIRST_STEP_REFUSALS}")


def downgrade() -> None:
    op.execute("UPDATE sagas SET status = 'compensated' "
               f"WHERE status = 'refused' AND {FIRST_STEP_REFUSALS}")
