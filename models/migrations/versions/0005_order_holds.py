"""a placed order holds its pet for a while, then expires

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00

`orders.hold_until`: till when a placed order holds its pet without the owner's approval.
The expiry sweep finds the placed orders past it through a partial index. Orders placed
before this revision get a full hold from the upgrade (`PETSTORE_ORDER_HOLD`), so none of
them is cancelled the moment it runs, and none holds its pet for ever.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common.settings import get_settings

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLACED = sa.text("status = 'placed'")


def upgrade() -> None:
    op.add_column("orders", sa.Column("hold_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text("UPDATE orders SET hold_until = now() + make_interval(secs => :hold) "
                       "WHERE status = 'placed'")
               .bindparams(hold=float(get_settings().order_hold_seconds)))
    op.create_index("ix_orders_lapsing_holds", "orders", ["hold_until"], unique=False,
                    postgresql_where=PLACED)


def downgrade() -> None:
    op.drop_index("ix_orders_lapsing_holds", table_name="orders", postgresql_where=PLACED)
    op.drop_column("orders", "hold_until")
