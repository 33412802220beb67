"""What the order service does; each operation is safe to repeat."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.events import OrderCancelled, OrderPlaced
from models.order.tables import CANCELLED, PLACED, Order, order_ids
from models.outbox import publish


class OrderNotFound(LookupError):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"Order {order_id} not found")
        self.order_id = order_id


def next_order_id(session: Session) -> int:
    return session.execute(order_ids.next_value()).scalar_one()


def place_order(session: Session, *, order_id: int, pet_id: int, customer_id: int,
                quantity: int = 1, ship_date: datetime | None = None) -> None:
    """Create the order as `placed`; placing it again changes nothing."""
    placed = session.execute(
        insert(Order).values(id=order_id, pet_id=pet_id, customer_id=customer_id,
                             quantity=quantity, ship_date=ship_date, status=PLACED,
                             complete=False)
        .on_conflict_do_nothing(index_elements=[Order.id]).returning(Order.id)
    ).first()
    if placed:
        publish(session, OrderPlaced(order_id=order_id, pet_id=pet_id))


def cancel_order(session: Session, order_id: int) -> None:
    """Mark a placed order cancelled (it is kept, never deleted); nothing if it is not."""
    cancelled = session.execute(
        update(Order).where(Order.id == order_id, Order.status == PLACED)
        .values(status=CANCELLED).returning(Order.pet_id)
    ).first()
    if cancelled:
        publish(session, OrderCancelled(order_id=order_id, pet_id=cancelled.pet_id))


def get_order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return order
