"""Store operations: the inventory, and orders placed through the create-order saga."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import abort

from models.db import unit_of_work
from models.inventory import counts
from models.order import get_order
from web.api import Blueprint
from web.auth import current_user, login_required
from web.store import ordering
from web.store.schemas import InventorySchema, OrderAcceptedSchema, OrderSchema

blp = Blueprint("store", __name__, url_prefix="/store", description="Access to Petstore orders")
ORDER_ID = "<int(max=9223372036854775807):order_id>"


@blp.route("/inventory")
@blp.response(200, InventorySchema)
def inventory():
    """Returns pet inventories by status

    Counts kept by the inventory service from pet events; they follow changes within
    moments, and once work settles they equal the pets counted by status.
    """
    with unit_of_work() as session:
        return counts(session)


@blp.route("/order", methods=["POST"])
@login_required(blp)
@blp.arguments(OrderSchema)
@blp.response(200, OrderSchema)
@blp.alt_response(202, schema=OrderAcceptedSchema, success=True,
                  description="Still in progress: poll the saga named by `Location`",
                  headers={"Location": {"schema": {"type": "string"}}})
@blp.alt_response(404, response="NOT_FOUND", description="No such pet")
@blp.alt_response(409, response="CONFLICT", description="The pet is not available")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE",
                  description="A technical failure; the saga undid its steps")
@blp.doc(parameters=[
    {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string", "maxLength": 200},
     "description": "Repeating a request with the same key returns the first answer"},
    {"in": "header", "name": "Prefer", "schema": {"type": "string"},
     "description": "`respond-async` answers 202 at once"},
])
def place_order(order: dict[str, Any]):
    """Place an order for a pet

    Runs the create-order saga (reserve the pet, place the order, count it in the
    inventory) and waits a few seconds for it to settle.
    """
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= 200:
        abort(422, message="Idempotency-Key must be 1 to 200 characters")
    saga = ordering.start(order, current_user(), key)
    if "respond-async" not in request.headers.get("Prefer", ""):
        saga = ordering.settle(saga.id, ordering.wait_seconds())
    return ordering.answer(saga)


@blp.route(f"/order/{ORDER_ID}")
@login_required(blp, may_forbid=True)
@blp.response(200, OrderSchema)
@blp.alt_response(404, response="NOT_FOUND")
def order_by_id(order_id: int):
    """Find purchase order by ID

    Customers see their own orders; the store owner sees every order.
    """
    user = current_user()
    with unit_of_work() as session:
        order = get_order(session, order_id)
    if not (user.is_owner or order.customer_id == user.id):
        abort(403, message="You may only see your own orders")
    return order
