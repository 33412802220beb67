"""Placing an order: start the create-order saga, wait a little for it, say how it went."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

from flask import current_app, jsonify
from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models.db import unit_of_work
from models.order import get_order, next_order_id
from models.saga import COMPENSATED, COMPLETED, FAILED, Saga
from models.user import User
from sagas import engine
from sagas.create_order import create_order
from web.store.schemas import OrderAcceptedSchema

SETTLED = (COMPLETED, COMPENSATED, FAILED)
# A step's refusal, by the participant's error name, as the HTTP status it means.
REFUSALS = {"PetNotAvailable": 409, "PetNotFound": 404}


def fingerprint(order: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(order, sort_keys=True, default=str).encode()).hexdigest()


def start(order: dict[str, Any], user: User, idempotency_key: str | None) -> Saga:
    """The saga for this order: a new one, or the one this Idempotency-Key started."""
    request_hash = fingerprint(order)
    for _ in range(2):  # a concurrent twin with the same key may win the insert
        try:
            with unit_of_work() as session:
                if idempotency_key and (saga := _keyed(session, user, idempotency_key)):
                    if saga.request_hash != request_hash:
                        abort(422, message="This Idempotency-Key was used with another body")
                    return saga
                payload = {
                    "order_id": next_order_id(session),
                    "pet_id": order["pet_id"],
                    "customer_id": user.id,
                    "quantity": order["quantity"],
                    "ship_date": order["ship_date"].isoformat() if order.get("ship_date")
                    else None,
                }
                return engine.start(session, create_order, payload, started_by=user.id,
                                    idempotency_key=idempotency_key, request_hash=request_hash)
        except IntegrityError:
            continue
    abort(409, message="A request with this Idempotency-Key is in progress; retry")


def _keyed(session, user: User, key: str) -> Saga | None:
    return session.scalar(select(Saga).where(Saga.started_by == user.id,
                                             Saga.idempotency_key == key))


def settle(saga_id: uuid.UUID, seconds: float) -> Saga:
    """The saga once it has settled, or as it is when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    pause = 0.002
    while True:
        with unit_of_work() as session:
            saga = session.get(Saga, saga_id)
        if saga.status in SETTLED or time.monotonic() >= deadline:
            return saga
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def answer(saga: Saga) -> Any:
    """The HTTP answer for a saga's state (the order, an error, or 202)."""
    order_id = saga.payload["order_id"]
    if saga.status == COMPLETED:
        with unit_of_work() as session:
            return get_order(session, order_id)
    extra = {"sagaId": str(saga.id), "orderId": order_id}
    if saga.status == COMPENSATED and saga.error_code in REFUSALS:
        abort(REFUSALS[saga.error_code], message=saga.error, extra=extra)
    if saga.status in SETTLED:
        abort(503, message=f"The order could not be placed and was undone: {saga.error}",
              extra={**extra, "sagaStatus": saga.status})
    accepted = OrderAcceptedSchema().dump(
        {"saga_id": saga.id, "order_id": order_id, "status": saga.status})
    response = jsonify(accepted)
    response.status_code = 202
    response.headers["Location"] = f"/v2/sagas/{saga.id}"
    return response


def wait_seconds() -> float:
    return current_app.config["ORDER_WAIT_SECONDS"]
