"""The order service's saga steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models import order as orders
from workers.steps import saga_step


@saga_step("orders.place_order")
def place_order(session: Session, order: dict[str, Any]) -> None:
    """Create the order, `placed`."""
    ship_date = order.get("ship_date")
    orders.place_order(session, order_id=order["order_id"], pet_id=order["pet_id"],
                       customer_id=order["customer_id"], quantity=order["quantity"],
                       ship_date=datetime.fromisoformat(ship_date) if ship_date else None)


@saga_step("orders.cancel_order")
def cancel_order(session: Session, order: dict[str, Any]) -> None:
    """placed -> cancelled; the order is kept, never deleted."""
    orders.cancel_order(session, order["order_id"])


@saga_step("orders.reopen_order")
def reopen_order(session: Session, order: dict[str, Any]) -> None:
    """Undo a cancellation: cancelled -> placed."""
    orders.reopen_order(session, order["order_id"])


@saga_step("orders.approve_order")
def approve_order(session: Session, order: dict[str, Any]) -> None:
    """placed -> approved."""
    orders.approve_order(session, order["order_id"])


@saga_step("orders.unapprove_order")
def unapprove_order(session: Session, order: dict[str, Any]) -> None:
    """Undo an approval: approved -> placed."""
    orders.unapprove_order(session, order["order_id"])


@saga_step("orders.deliver_order")
def deliver_order(session: Session, order: dict[str, Any]) -> None:
    """approved -> delivered, complete."""
    orders.deliver_order(session, order["order_id"])
