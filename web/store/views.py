"""Store operations."""

from __future__ import annotations

from marshmallow import fields

from models.db import unit_of_work
from models.inventory import counts
from web.api import Blueprint

blp = Blueprint("store", __name__, url_prefix="/store", description="Access to Petstore orders")


@blp.route("/inventory")
@blp.response(200, fields.Dict(keys=fields.String(), values=fields.Integer()))
def inventory():
    """Returns pet inventories by status

    Counts kept by the inventory service from pet events; they follow changes within
    moments, and once work settles they equal the pets counted by status.
    """
    with unit_of_work() as session:
        return counts(session)
