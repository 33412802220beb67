"""The order service: purchase orders and their status."""

from models.order.operations import (
    OrderInWrongState,
    OrderNotApproved,
    OrderNotFound,
    OrderNotPlaced,
    approve_order,
    cancel_order,
    deliver_order,
    get_order,
    next_order_id,
    place_order,
    reopen_order,
    unapprove_order,
)
from models.order.tables import APPROVED, CANCELLED, DELIVERED, LIVE, PLACED, STATUSES, Order

__all__ = [
    "APPROVED",
    "CANCELLED",
    "DELIVERED",
    "LIVE",
    "PLACED",
    "STATUSES",
    "Order",
    "OrderInWrongState",
    "OrderNotApproved",
    "OrderNotFound",
    "OrderNotPlaced",
    "approve_order",
    "cancel_order",
    "deliver_order",
    "get_order",
    "next_order_id",
    "place_order",
    "reopen_order",
    "unapprove_order",
]
