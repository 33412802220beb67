"""The order service's saga steps, and its sweep of placed orders whose hold lapsed."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from common.logs import saga_logged
from common.settings import get_settings
from models import order as orders
from models.db import unit_of_work
from sagas import engine
from sagas import orders as order_sagas
from workers.celery_app import housekeeping
from workers.steps import saga_step

log = logging.getLogger(__name__)
EXPIRY_BATCH = 100


@saga_step("orders.place_order")
def place_order(session: Session, order: dict[str, Any]) -> None:
    """Create the order, `placed`, unless its customer holds too many placed orders."""
    ship_date = order.get("ship_date")
    # The gateway sends its limit and hold with the saga; a saga started before it did
    # takes this worker's settings.
    settings = get_settings()
    orders.place_order(session, order_id=order["order_id"], pet_id=order["pet_id"],
                       customer_id=order["customer_id"], quantity=order["quantity"],
                       ship_date=datetime.fromisoformat(ship_date) if ship_date else None,
                       max_open=order.get("max_open_orders", settings.max_open_orders),
                       hold_seconds=order.get("hold_seconds", settings.order_hold_seconds))


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


@housekeeping("orders.expire_holds")
def expire_holds() -> int:
    """Start a cancel-order saga for each placed order whose hold passed unapproved.

    Each order is claimed (its hold cleared) in the transaction that starts its saga, so
    overlapping runs, on one worker or several, start one saga per order.
    """
    with unit_of_work() as session:
        lapsed = orders.claim_lapsed_holds(session, EXPIRY_BATCH)
        started = [(order, engine.start(session, order_sagas.cancel_order, _expiry(order)))
                   for order in lapsed]
    for order, saga in started:
        with saga_logged(str(saga.id)):
            log.info("%s saga started for order %s of user %s: its hold lapsed",
                     order_sagas.cancel_order.kind, order.order_id, order.customer_id)
    return len(started)


def _expiry(order: orders.LapsedHold) -> dict[str, Any]:
    # The store starts it, not the customer: no `started_by`, and the reason in its data.
    return {"order_id": order.order_id, "pet_id": order.pet_id, "reason": order_sagas.HOLD_LAPSED}
