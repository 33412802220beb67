"""Store operations."""

from __future__ import annotations

from marshmallow import Schema, fields

from models.db import unit_of_work
from models.inventory import counts
from web.api import Blueprint

blp = Blueprint("store", __name__, url_prefix="/store", description="Access to Petstore orders")


class InventorySchema(Schema):
    available = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    sold = fields.Integer(required=True)


@blp.route("/inventory")
@blp.response(200, InventorySchema)
def inventory():
    """Returns pet inventories by status

    Counts kept by the inventory service from pet events; they follow changes within
    moments, and once work settles they equal the pets counted by status.
    """
    with unit_of_work() as session:
        return counts(session)
