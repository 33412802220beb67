"""Store operations: the inventory, and orders placed through the create-order saga."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from models.db import unit_of_work
from models.inventory import counts
from models.order import APPROVED, PLACED, Order, check_new_order, get_order
from sagas.orders import approve_order, cancel_order, create_order, deliver_order
from web.api import Blueprint
from web.auth import current_user, login_required
from web.store import ordering
from web.store.schemas import (
    InventorySchema,
    OrderAcceptedSchema,
    OrderSchema,
    SagaErrorSchema,
)

blp = Blueprint("store", __name__, url_prefix="/store", description="Access to Petstore orders")
ORDER_ID = "<id:order_id>"


@blp.route("/inventory")
@blp.response(200, InventorySchema)
def inventory():
    """Returns pet inventories by status

    Counts kept by the inventory service from pet events; they follow changes within
    moments, and once work settles they equal the pets counted by status.
    """
    with unit_of_work() as session:
        return counts(session)


ORDER_CHANGE_HEADERS = [
    {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string", "maxLength": 200},
     "description": "Repeating a request with the same key returns the first answer"},
    {"in": "header", "name": "Prefer", "schema": {"type": "string"},
     "description": "`respond-async` answers 202 at once"},
]


SAGA_ID = {"Saga-Id": {"description": "The saga that made (or tried) the change, at "
                                      "/v2/sagas/{id}",
                       "schema": {"type": "string", "format": "uuid"}}}


def saga_answers(view: Callable[..., Any]) -> Callable[..., Any]:
    """The answers every order change can give besides the Order itself."""
    for status, description in (
        (404, "No such order or pet"),
        (409, "Not possible from the order's or the pet's state"),
        (503, "A technical failure; the saga undid its steps"),
    ):
        view = blp.alt_response(status, schema=SagaErrorSchema, description=description,
                                headers=SAGA_ID)(view)
    view = blp.alt_response(202, schema=OrderAcceptedSchema, success=True,
                            description="Still in progress: poll the saga named by `Location`",
                            headers={"Location": {"schema": {"type": "string"}}, **SAGA_ID}
                            )(view)
    view = blp.response(200, OrderSchema, headers=SAGA_ID)(view)
    return blp.doc(parameters=ORDER_CHANGE_HEADERS)(view)


@blp.route("/order", methods=["POST"])
@login_required(blp)
@blp.arguments(OrderSchema)
@saga_answers
def place_order(order: dict[str, Any]):
    """Place an order for a pet

    Runs the create-order saga (reserve the pet, place the order, count it in the
    inventory) and waits a few seconds for it to settle. The order gets the `id` the
    client chose when no order has it; without one (or 0) the store assigns it.

    A customer holds at most a few placed orders at once (409 beyond), and a placed order
    the store has not approved within its hold is cancelled, its pet available again.
    """
    check_new_order(order.get("pet_id"), order["quantity"])
    user = current_user()
    ship_date = order.get("ship_date")
    # The limit and the hold travel with the saga: its steps apply the gateway's settings.
    payload = {"order_id": order.get("id") or None, "pet_id": order["pet_id"],
               "customer_id": user.id, "quantity": order["quantity"],
               "ship_date": ship_date.isoformat() if ship_date else None,
               "max_open_orders": current_app.config["MAX_OPEN_ORDERS"],
               "hold_seconds": current_app.config["ORDER_HOLD_SECONDS"]}
    return ordering.run(create_order, payload, user, fingerprint_of=order, new_order=True)


def _order_in(order_id: int, status: str, change: str) -> Order:
    """The user's order, if it is in this state; else 404, 403 or 409 at once."""
    with unit_of_work() as session:
        order = get_order(session, order_id)
    _may_see(order)
    if order.status != status:
        article = "an" if status[0] in "aeiou" else "a"
        abort(409, message=f"Order {order_id} is {order.status}: only {article} {status} "
                           f"order can be {change}")
    return order


@blp.route(f"/order/{ORDER_ID}")
class OrderById(MethodView):
    @login_required(blp, may_forbid=True)
    @blp.response(200, OrderSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, order_id: int):
        """Find purchase order by ID

        Customers see their own orders; the store owner sees every order.
        """
        with unit_of_work() as session:
            order = get_order(session, order_id)
        _may_see(order)
        return order

    @login_required(blp, may_forbid=True)
    @saga_answers
    def delete(self, order_id: int):
        """Delete purchase order by ID

        Cancels a placed order through the cancel-order saga: the order is kept as
        `cancelled`, the pet is available again. After approval: 409.
        """
        order = _order_in(order_id, PLACED, "cancelled")
        payload = {"order_id": order.id, "pet_id": order.pet_id}
        return ordering.run(cancel_order, payload, current_user())


@blp.route(f"/order/{ORDER_ID}/approve", methods=["POST"])
@login_required(blp, owner=True)
@saga_answers
def approve(order_id: int):
    """Approve a placed order (store owner)

    The approve-order saga: the order `approved`, the pet `sold`, the inventory follows.
    """
    order = _order_in(order_id, PLACED, "approved")
    return ordering.run(approve_order, {"order_id": order.id, "pet_id": order.pet_id},
                        current_user())


@blp.route(f"/order/{ORDER_ID}/deliver", methods=["POST"])
@login_required(blp, owner=True)
@saga_answers
def deliver(order_id: int):
    """Deliver an approved order (store owner)

    The order becomes `delivered` and `complete`.
    """
    order = _order_in(order_id, APPROVED, "delivered")
    return ordering.run(deliver_order, {"order_id": order.id, "pet_id": order.pet_id},
                        current_user())


def _may_see(order: Order) -> None:
    user = current_user()
    if not (user.is_owner or order.customer_id == user.id):
        abort(403, message="You may only see and change your own orders")
