"""The order service: purchase orders and their status."""

from models.order.operations import (
    OrderNotFound,
    cancel_order,
    get_order,
    next_order_id,
    place_order,
)
from models.order.tables import CANCELLED, LIVE, PLACED, STATUSES, Order

__all__ = [
    "CANCELLED",
    "LIVE",
    "PLACED",
    "STATUSES",
    "Order",
    "OrderNotFound",
    "cancel_order",
    "get_order",
    "next_order_id",
    "place_order",
]
