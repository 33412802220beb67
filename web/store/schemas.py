"""Request and response shapes of the store operations."""

from __future__ import annotations

from datetime import UTC

from flask_smorest.error_handler import ErrorSchema
from marshmallow import Schema, fields, validate

from models.order import STATUSES
from web.fields import ContractSchema, Id, NewId


class InventorySchema(Schema):
    available = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    sold = fields.Integer(required=True)


class OrderSchema(ContractSchema):
    """An order for one pet (`quantity` 1: a pet is one animal). The order gets the `id` the
    client chose when no order has it; without one (or 0) the store assigns it. `status`
    and `complete` are the store's to set."""

    id = NewId()
    petId = Id(attribute="pet_id")
    quantity = fields.Integer(strict=True, load_default=1,
                              validate=validate.Range(-(2**31), 2**31 - 1))
    shipDate = fields.AwareDateTime(attribute="ship_date", default_timezone=UTC)
    status = fields.String(validate=validate.OneOf(STATUSES),
                           metadata={"description": "Order Status"})
    complete = fields.Boolean()


class SagaErrorSchema(ErrorSchema):
    """An order change that did not happen: the error, and the saga that tried."""

    sagaId = fields.UUID(metadata={"description": "The saga, at /v2/sagas/{sagaId}"})
    orderId = fields.Integer()
    sagaStatus = fields.String(metadata={"description": "compensated, refused or failed"})


class OrderAcceptedSchema(Schema):
    """The order's saga has not settled yet: poll the saga, or the order later."""

    sagaId = fields.UUID(attribute="saga_id")
    orderId = fields.Integer(attribute="order_id")
    status = fields.String()
