"""The order service's table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, Sequence, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base, utcnow

PLACED, APPROVED, DELIVERED, CANCELLED = "placed", "approved", "delivered", "cancelled"
STATUSES = (PLACED, APPROVED, DELIVERED, CANCELLED)
# An order that still holds its pet; a pet is in at most one of these at a time.
LIVE = (PLACED, APPROVED)

# Ids are drawn before the order exists, so a saga can name its order from the start.
order_ids = Sequence("order_ids", metadata=Base.metadata)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # The pet's and the customer's ids, not foreign keys: other services own those tables.
    pet_id: Mapped[int]
    customer_id: Mapped[int] = mapped_column(index=True)
    quantity: Mapped[int] = mapped_column(default=1)
    ship_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=PLACED)
    complete: Mapped[bool] = mapped_column(default=False)
    # Till when a placed order holds its pet without the owner's approval; past it, the
    # order is cancelled. Cleared once its expiry saga is started: one saga per order.
    hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        Index("uq_orders_live_pet", "pet_id", unique=True,
              postgresql_where=text(f"status IN {LIVE}")),
        # The expiry sweep's search: placed orders by the end of their hold.
        Index("ix_orders_lapsing_holds", "hold_until",
              postgresql_where=text(f"status = '{PLACED}'")),
    )
