"""Order changes as sagas: start one, wait a little for it, say how it went."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from typing import Any

from flask import Response, after_this_request, current_app, jsonify, request
from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import tracing
from common.logs import saga_logged
from models.db import unit_of_work
from models.order import Order, TooManyOpenOrders, check_open_orders, get_order, new_order_id
from models.saga import COMPENSATED, COMPLETED, ENDED, REFUSED, Saga
from models.user import User
from sagas import engine
from sagas.definition import SagaDefinition
from sagas.registry import definition_of
from web.errors import status_of
from web.store.schemas import OrderAcceptedSchema

log = logging.getLogger(__name__)



def run(definition: SagaDefinition, payload: dict[str, Any], user: User,
        fingerprint_of: Any = None, new_order: bool = False) -> Any:
    """Start the saga (once per Idempotency-Key), wait for it unless the client prefers
    not to, and answer as its state says, naming the saga in a `Saga-Id` header. A
    `new_order` saga's order gets its id now (the one in the payload, when free), so even
    a 202 can name it."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= 200:
        abort(422, message="Idempotency-Key must be 1 to 200 characters")
    saga = _start(definition, payload, user, key, fingerprint_of or payload, new_order)
    saga_id = str(saga.id)

    @after_this_request
    def name_the_saga(response: Response) -> Response:
        response.headers["Saga-Id"] = saga_id
        return response

    if "respond-async" not in request.headers.get("Prefer", ""):
        saga = _settle(saga.id, current_app.config["ORDER_WAIT_SECONDS"])
    return _answer(saga)


def _fingerprint(definition: SagaDefinition, request_data: Any) -> str:
    body = json.dumps([definition.kind, request_data], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _start(definition: SagaDefinition, payload: dict[str, Any], user: User, key: str | None,
           request_data: Any, new_order: bool) -> Saga:
    request_hash = _fingerprint(definition, request_data)
    for _ in range(2):  # a concurrent twin with the same key may win the insert
        try:
            with unit_of_work() as session:
                if key and (saga := _keyed(session, user, key)):
                    if saga.request_hash != request_hash:
                        abort(422, message="This Idempotency-Key was used with another request")
                    return saga
                data = _new_order(session, payload) if new_order else payload
                saga = engine.start(session, definition, data, started_by=user.id,
                                    idempotency_key=key, request_hash=request_hash)
            with saga_logged(str(saga.id)), tracing.saga_span(saga.id, f"{definition.kind} "
                                                                        "started"):
                log.info("%s saga started for order %s by user %s", definition.kind,
                         data["order_id"], user.id)
            return saga
        except IntegrityError:
            continue
    abort(409, message="A request with this Idempotency-Key is in progress; retry")


def _new_order(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """A new order's saga data, with its order's id drawn, if its customer may order now.

    The order service's own rule, asked here so that a customer at the limit gets 409 at
    once and holds no pet meanwhile; the saga's `place_order` decides under the customer's
    lock, where two orders sent at once cannot both pass.
    """
    try:
        check_open_orders(session, payload["customer_id"], payload["max_open_orders"])
    except TooManyOpenOrders as exc:
        abort(409, message=str(exc))
    return {**payload, "order_id": new_order_id(session, payload["order_id"])}


def _keyed(session: Session, user: User, key: str) -> Saga | None:
    return session.scalar(select(Saga).where(Saga.started_by == user.id,
                                             Saga.idempotency_key == key))


def _settle(saga_id: uuid.UUID, seconds: float) -> Saga:
    """The saga once it has settled, or as it is when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    pause = 0.002
    while True:
        with unit_of_work() as session:
            saga = session.get(Saga, saga_id)
        if saga.status in ENDED or time.monotonic() >= deadline:
            return saga
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _answer(saga: Saga) -> Any:
    """The HTTP answer for a saga's state: the order, an error, or 202."""
    order_id = saga.payload["order_id"]
    if saga.status == COMPLETED:
        with unit_of_work() as session:
            return get_order(session, order_id)
    if saga.status in (REFUSED, COMPENSATED) and (status := _refusal_status(saga)):
        abort(status, message=saga.error, extra=_named_in_error(saga))
    if saga.status in ENDED:
        abort(503, message=f"The change could not be made and was undone: {saga.error}",
              extra={**_named_in_error(saga), "sagaStatus": saga.status})
    accepted = OrderAcceptedSchema().dump(
        {"saga_id": saga.id, "order_id": order_id, "status": saga.status})
    response = jsonify(accepted)
    response.status_code = 202
    response.headers["Location"] = f"/v2/sagas/{saga.id}"
    return response


def _refusal_status(saga: Saga) -> int | None:
    """The status of the refusal that undid the saga: that of its type, which the saga's
    definition declares; None when no participant refused (an injected fault, say)."""
    refusal = definition_of(saga.kind, saga.definition_version).refusal(saga.error_code)
    return status_of(refusal) if refusal else None


def _named_in_error(saga: Saga) -> dict[str, Any]:
    """The saga, and its order when there is one: a refused new order was never placed."""
    order_id = saga.payload["order_id"]
    with unit_of_work() as session:
        placed = session.get(Order, order_id) is not None
    return {"sagaId": str(saga.id), **({"orderId": order_id} if placed else {})}
