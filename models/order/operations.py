"""What the order service does. Each operation is safe to repeat: doing it again when it
is already done changes nothing; asking it of an order in the wrong state is refused."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import BigInteger, Float, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.db import IdTaken, new_id
from models.events import (
    OrderApproved,
    OrderCancelled,
    OrderChanged,
    OrderDelivered,
    OrderPlaced,
)
from models.order.tables import APPROVED, CANCELLED, DELIVERED, PLACED, Order, order_ids
from models.outbox import publish


class OrderNotFound(LookupError):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"Order {order_id} not found")
        self.order_id = order_id


class OrderInWrongState(Exception):
    """The order is not in the state this change starts from."""

    def __init__(self, order_id: int, status: str, change: str) -> None:
        super().__init__(f"Order {order_id} is {status}: it cannot be {change}")
        self.order_id, self.status = order_id, status


class OrderNotPlaced(OrderInWrongState):
    """Approving or cancelling needs a placed order."""


class OrderNotApproved(OrderInWrongState):
    """Delivering needs an approved order."""


class InvalidOrder(ValueError):
    """An order the store cannot place as asked."""


def check_new_order(pet_id: int | None, quantity: int) -> None:
    """An order is for one pet, and a pet is one animal."""
    if pet_id is None:
        raise InvalidOrder("An order needs the petId of the pet it is for")
    if quantity != 1:
        raise InvalidOrder(f"Each pet is one animal: quantity must be 1, not {quantity}")


class OrderIdTaken(IdTaken):
    """Another order has the id this order's saga was started with."""

    def __init__(self, order_id: int) -> None:
        super().__init__("Order", order_id)


def new_order_id(session: Session, chosen: int | None = None) -> int:
    """The id for an order about to be placed: the client's choice when it made one and no
    order has it, else the next free number of `order_ids`."""
    return new_id(session, Order.id, chosen, what="Order", sequence=order_ids.name)


class TooManyOpenOrders(Exception):
    """The customer holds as many placed orders as the store lets one customer hold."""

    def __init__(self, held: int, limit: int) -> None:
        orders = "order" if held == 1 else "orders"
        super().__init__(
            f"You already have {held} placed {orders}; a customer may hold at most {limit} "
            "awaiting the store's approval. Cancel one, or wait until the store approves one "
            "or it expires, before ordering again")
        self.held, self.limit = held, limit


def check_open_orders(session: Session, customer_id: int, limit: int) -> None:
    """Refuse a new order from a customer who already holds `limit` placed orders.

    Only `placed` orders count: they hold pets on the customer's word alone, while an
    approved one holds its pet because the owner chose to sell it. Without the customer's
    lock (`place_order` takes it) two orders at once may both pass: a courtesy check only.
    """
    held = session.scalar(select(func.count()).select_from(Order).where(
        Order.customer_id == customer_id, Order.status == PLACED))
    if held >= limit:
        raise TooManyOpenOrders(held, limit)


# One customer's placements in turn, within the transaction: a count then an insert that
# no other placement of theirs interleaves. The key hashes a name, so that it meets no
# other kind of advisory lock; a collision only makes two placements wait for each other.
LOCK_CUSTOMER = select(func.pg_advisory_xact_lock(func.hashtextextended(
    func.concat("orders.customer:", bindparam("customer_id", type_=BigInteger)), 0)))
# Built once, and sent on the transaction's connection: every order's saga runs it. The
# hold ends by the database's clock, the one the expiry sweep reads.
PLACE = (insert(Order.__table__)
         .values(hold_until=func.now() + func.make_interval(
             0, 0, 0, 0, 0, 0, bindparam("hold_seconds", type_=Float)))
         .on_conflict_do_nothing(index_elements=[Order.id])
         .returning(Order.id))


def place_order(session: Session, *, order_id: int, pet_id: int, customer_id: int,
                max_open: int, hold_seconds: float, quantity: int = 1,
                ship_date: datetime | None = None) -> None:
    """Create the order as `placed`, holding its pet for `hold_seconds` unless approved;
    placing it again changes nothing. Refused when the customer already holds `max_open`
    placed orders (two at once cannot both pass: each counts under the customer's lock),
    or when another order has the id (two clients chose it at once)."""
    connection = session.connection()
    connection.execute(LOCK_CUSTOMER, {"customer_id": customer_id})
    try:
        check_open_orders(session, customer_id, max_open)
    except TooManyOpenOrders:
        if _is_placed(session, order_id, pet_id, customer_id):
            return  # placed before: counting itself must not refuse its own redelivery
        raise
    placed = connection.execute(PLACE, {
        "id": order_id, "pet_id": pet_id, "customer_id": customer_id, "quantity": quantity,
        "ship_date": ship_date, "status": PLACED, "complete": False,
        "hold_seconds": hold_seconds}).first()
    if placed:
        publish(session, OrderPlaced(order_id=order_id, pet_id=pet_id))
        return
    if not _is_placed(session, order_id, pet_id, customer_id):
        raise OrderIdTaken(order_id)


def _is_placed(session: Session, order_id: int, pet_id: int, customer_id: int) -> bool:
    """This order exists, for this pet and customer, whatever its status now."""
    existing = session.get(Order, order_id)
    return existing is not None and (existing.pet_id, existing.customer_id) == (
        pet_id, customer_id)


class LapsedHold(NamedTuple):
    order_id: int
    pet_id: int
    customer_id: int


# Placed orders past their hold, oldest first; rows another sweep holds are skipped.
_LAPSED = (select(Order.id).where(Order.status == PLACED, Order.hold_until < func.now())
           .order_by(Order.hold_until).limit(bindparam("limit"))
           .with_for_update(skip_locked=True).scalar_subquery())
CLAIM_LAPSED = (update(Order).where(Order.id.in_(_LAPSED)).values(hold_until=None)
                .returning(Order.id, Order.pet_id, Order.customer_id))


def claim_lapsed_holds(session: Session, limit: int) -> list[LapsedHold]:
    """Up to `limit` placed orders whose hold passed without approval, each claimed for
    expiry: its hold is cleared in the caller's transaction, so the caller starts the
    expiry in that same commit and no other sweep (running now, or later) claims it again.
    An approved order is never claimed; one approved after its claim refuses the expiry."""
    rows = session.connection().execute(CLAIM_LAPSED, {"limit": limit})
    return [LapsedHold(*row) for row in rows]


def _move(session: Session, order_id: int, source: str, target: str,
          event: type[OrderChanged] | None = None, **values: object) -> bool:
    """source -> target in one statement; False (and no event) when it was not `source`."""
    moved = session.execute(
        update(Order).where(Order.id == order_id, Order.status == source)
        .values(status=target, **values).returning(Order.pet_id)
    ).first()
    if moved and event:
        publish(session, event(order_id=order_id, pet_id=moved.pet_id))
    return moved is not None


def _status(session: Session, order_id: int) -> str | None:
    return session.scalar(select(Order.status).where(Order.id == order_id))


def cancel_order(session: Session, order_id: int) -> None:
    """placed -> cancelled (kept, never deleted). A missing or cancelled order is left
    alone; an approved or delivered one is refused."""
    if not _move(session, order_id, PLACED, CANCELLED, OrderCancelled):
        status = _status(session, order_id)
        if status in (APPROVED, DELIVERED):
            raise OrderNotPlaced(order_id, status, "cancelled")


def reopen_order(session: Session, order_id: int) -> None:
    """Undo a cancellation: cancelled -> placed."""
    _move(session, order_id, CANCELLED, PLACED)


def approve_order(session: Session, order_id: int) -> None:
    """placed -> approved; refused from any other state but approved."""
    if not _move(session, order_id, PLACED, APPROVED, OrderApproved):
        status = _status(session, order_id)
        if status is None:
            raise OrderNotFound(order_id)
        if status != APPROVED:
            raise OrderNotPlaced(order_id, status, "approved")


def unapprove_order(session: Session, order_id: int) -> None:
    """Undo an approval: approved -> placed."""
    _move(session, order_id, APPROVED, PLACED)


def deliver_order(session: Session, order_id: int) -> None:
    """approved -> delivered and complete; refused from any other state but delivered."""
    if not _move(session, order_id, APPROVED, DELIVERED, OrderDelivered, complete=True):
        status = _status(session, order_id)
        if status is None:
            raise OrderNotFound(order_id)
        if status != DELIVERED:
            raise OrderNotApproved(order_id, status, "delivered")


def get_order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return order
