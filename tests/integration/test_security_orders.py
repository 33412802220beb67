"""One customer cannot hoard the store: a few placed orders at a time, each held a while.

A customer holds at most MAX_OPEN_ORDERS placed orders; a placed order the owner has not
approved within ORDER_HOLD_SECONDS is cancelled by a saga of its own, with a real worker
and beat.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select, text, update

from models.db import unit_of_work
from models.order import Order
from models.order.operations import LOCK_CUSTOMER
from models.saga import Saga
from models.user import User
from sagas import engine
from sagas.orders import create_order
from tests.support.system import settled
from tests.support.waiting import eventually
from workers.orders import expire_holds

LIMIT = 3
PATIENCE = 60  # seconds any state here may take to arrive: a deadline, never a figure
AT_LIMIT = f"You already have {LIMIT} placed orders;"


# The pets the running test added: its work, which `settled` judges.
ADDED: list[int] = []


@pytest.fixture(autouse=True)
def running(worker):
    ADDED.clear()
    return worker


def own_work_settled() -> bool:
    return settled(pets=ADDED)


def an_app(**config) -> Flask:
    from web import create_app

    return create_app({"TESTING": True, "MAX_OPEN_ORDERS": LIMIT, **config})


@pytest.fixture(scope="module")
def store() -> Flask:
    """The gateway with the limit these tests count on and a long hold."""
    return an_app(ORDER_HOLD_SECONDS=1800)


@pytest.fixture(scope="module")
def brief() -> Flask:
    """The gateway with a one-second hold."""
    return an_app(ORDER_HOLD_SECONDS=1)


@pytest.fixture
def shopper(sign_up) -> tuple[int, dict[str, str]]:
    """A fresh customer: (their user id, their headers)."""
    username, _, headers = sign_up()
    with unit_of_work() as session:
        return session.scalar(select(User.id).where(User.username == username)), headers


def add_pet(client, owner) -> dict:
    body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": []}
    response = client.post("/v2/pet", json=body, headers=owner)
    assert response.status_code == 200, response.json
    ADDED.append(response.json["id"])
    return response.json


def order(app: Flask, headers: dict[str, str], pet: dict):
    return app.test_client().post("/v2/store/order", json={"petId": pet["id"]},
                                  headers=headers)


def placed(app: Flask, headers: dict[str, str], pet: dict) -> dict:
    response = order(app, headers, pet)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "placed"
    return response.json


def pet_status(client, pet: dict) -> str:
    return client.get(f"/v2/pet/{pet['id']}").json["status"]


def placed_orders_of(customer_id: int) -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Order).where(
            Order.customer_id == customer_id, Order.status == "placed"))


def status_of(order_id: int) -> str:
    with unit_of_work() as session:
        return session.get(Order, order_id).status


def sagas_of(order_id: int, kind: str) -> list[Saga]:
    with unit_of_work() as session:
        return list(session.scalars(select(Saga).where(
            Saga.kind == kind, Saga.payload["order_id"].as_string() == str(order_id))))


def test_a_customer_holds_at_most_the_limit_and_the_next_order_changes_nothing(
        store, client, owner, shopper):
    customer_id, headers = shopper
    orders = [placed(store, headers, add_pet(client, owner)) for _ in range(LIMIT)]
    extra = add_pet(client, owner)
    refused = order(store, headers, extra)
    assert refused.status_code == 409, refused.json
    assert refused.json["message"].startswith(AT_LIMIT)
    assert pet_status(client, extra) == "available"
    assert placed_orders_of(customer_id) == LIMIT
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Order).where(
            Order.pet_id == extra["id"])) == 0

    # An approved order is the owner's decision: it no longer counts against the customer.
    approved = client.post(f"/v2/store/order/{orders[0]['id']}/approve", headers=owner)
    assert approved.status_code == 200, approved.json
    placed(store, headers, extra)
    # A cancelled one frees its place too.
    assert order(store, headers, add_pet(client, owner)).status_code == 409
    cancelled = client.delete(f"/v2/store/order/{orders[1]['id']}", headers=headers)
    assert cancelled.status_code == 200, cancelled.json
    placed(store, headers, add_pet(client, owner))
    eventually(own_work_settled, timeout=PATIENCE)


def test_a_repeated_request_gets_its_first_answer_even_at_the_limit(store, client, owner,
                                                                    shopper):
    _, headers = shopper
    for _ in range(LIMIT - 1):
        placed(store, headers, add_pet(client, owner))
    keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    pet = add_pet(client, owner)
    first = placed(store, keyed, pet)
    again = order(store, keyed, pet)  # its own order is the one that reached the limit
    assert again.status_code == 200, again.json
    assert again.json == first


def test_the_place_order_step_refuses_beyond_the_limit_and_the_pet_is_released(
        store, client, owner, shopper):
    """The saga's own check, for a saga that got past the gateway's (started here)."""
    customer_id, headers = shopper
    for _ in range(LIMIT):
        placed(store, headers, add_pet(client, owner))
    pet = add_pet(client, owner)
    payload = {"order_id": None, "pet_id": pet["id"], "customer_id": customer_id,
               "quantity": 1, "ship_date": None, "max_open_orders": LIMIT,
               "hold_seconds": 1800}
    with unit_of_work() as session:
        order_id = session.scalar(select(func.nextval("order_ids")))
        saga_id = engine.start(session, create_order, {**payload, "order_id": order_id}).id

    def ended() -> Saga | None:
        with unit_of_work() as session:
            saga = session.get(Saga, saga_id)
        return saga if saga.ended_at else None

    saga = eventually(ended, timeout=PATIENCE)
    assert (saga.status, saga.error_code) == ("compensated", "TooManyOpenOrders")
    assert AT_LIMIT in saga.error
    with unit_of_work() as session:
        assert session.get(Order, order_id) is None
    assert pet_status(client, pet) == "available"
    assert placed_orders_of(customer_id) == LIMIT
    eventually(own_work_settled, timeout=PATIENCE)


def test_two_orders_at_once_with_one_place_left_place_exactly_one(client, owner, shopper):
    """Both orders get past the gateway's check and meet in the order service, where the
    customer's lock lets one count and place before the other counts."""
    customer_id, headers = shopper
    patient = an_app(ORDER_HOLD_SECONDS=1800, ORDER_WAIT_SECONDS=PATIENCE)
    for _ in range(LIMIT - 1):
        placed(patient, headers, add_pet(client, owner))
    pets = [add_pet(client, owner), add_pet(client, owner)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        with unit_of_work() as session:  # held until both steps wait for it
            session.execute(LOCK_CUSTOMER, {"customer_id": customer_id})
            answers = [pool.submit(order, patient, headers, pet) for pet in pets]
            eventually(lambda: waiting_for_lock_of(customer_id) == 2, timeout=PATIENCE)
        answers = [answer.result() for answer in answers]
    assert sorted(a.status_code for a in answers) == [200, 409], [a.json for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert AT_LIMIT in refused.json["message"]
    assert refused.json["sagaId"]
    assert placed_orders_of(customer_id) == LIMIT
    assert sorted(pet_status(client, pet) for pet in pets) == ["available", "pending"]
    eventually(own_work_settled, timeout=PATIENCE)


def waiting_for_lock_of(customer_id: int) -> int:
    """Transactions waiting for the customer's placement lock (an advisory lock's 64-bit
    key is split into classid, its high half, and objid)."""
    with unit_of_work() as session:
        return session.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND ((classid::bigint << 32) | objid::bigint) = "
            "hashtextextended(concat('orders.customer:', CAST(:id AS bigint)), 0)"),
            {"id": customer_id})


def test_many_orders_racing_for_the_last_place_place_one(store, client, owner, shopper):
    customer_id, headers = shopper
    for _ in range(LIMIT - 1):
        placed(store, headers, add_pet(client, owner))
    pets = [add_pet(client, owner) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=len(pets)) as pool:
        answers = list(pool.map(lambda pet: order(store, headers, pet), pets))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * (len(pets) - 1), [a.json for a in answers]
    assert placed_orders_of(customer_id) == LIMIT
    eventually(own_work_settled, timeout=PATIENCE)
    assert sorted(pet_status(client, pet) for pet in pets) == [
        "available"] * (len(pets) - 1) + ["pending"]


def test_an_order_left_unapproved_past_its_hold_is_cancelled_by_itself(
        brief, client, owner, shopper):
    customer_id, headers = shopper
    pet = add_pet(client, owner)
    placed_order = placed(brief, headers, pet)
    url = f"/v2/store/order/{placed_order['id']}"
    eventually(lambda: client.get(url, headers=headers).json["status"] == "cancelled",
               timeout=PATIENCE)
    eventually(lambda: pet_status(client, pet) == "available", timeout=PATIENCE)
    eventually(own_work_settled, timeout=PATIENCE)  # the inventory agrees with the pets
    [expiry] = sagas_of(placed_order["id"], "cancel_order")
    assert (expiry.status, expiry.started_by) == ("completed", None)
    assert expiry.payload["reason"] == "hold_lapsed"
    # The customer's place is free, and the pet can be ordered again.
    assert placed_orders_of(customer_id) == 0
    placed(brief, headers, pet)


def test_an_approved_order_is_never_expired(store, brief, client, owner, shopper):
    _, headers = shopper
    pet = add_pet(client, owner)
    kept = placed(store, headers, pet)
    approved = client.post(f"/v2/store/order/{kept['id']}/approve", headers=owner)
    assert approved.status_code == 200, approved.json
    with unit_of_work() as session:  # its hold ends now, as if the owner took long to approve
        session.execute(update(Order).where(Order.id == kept["id"])
                        .values(hold_until=func.now() - text("interval '1 second'")))
    # An order placed after that expires: the sweep has run past the approved one's hold.
    later = placed(brief, headers, add_pet(client, owner))
    eventually(lambda: status_of(later["id"]) == "cancelled", timeout=PATIENCE)
    eventually(own_work_settled, timeout=PATIENCE)
    assert status_of(kept["id"]) == "approved"
    assert pet_status(client, pet) == "sold"
    assert sagas_of(kept["id"], "cancel_order") == []


def test_overlapping_expiry_sweeps_start_one_saga_per_order(store, client, owner, sign_up):
    orders = [placed(store, sign_up()[2], add_pet(client, owner)) for _ in range(4)]
    ids = [o["id"] for o in orders]
    with unit_of_work() as session:  # every hold ends at once: beat's sweep and these race
        session.execute(update(Order).where(Order.id.in_(ids))
                        .values(hold_until=func.now() - text("interval '1 second'")))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: expire_holds(), range(4)))
    for order_id in ids:
        eventually(lambda order_id=order_id: status_of(order_id) == "cancelled",
                   timeout=PATIENCE)
    eventually(own_work_settled, timeout=PATIENCE)
    assert [len(sagas_of(order_id, "cancel_order")) for order_id in ids] == [1] * len(ids)
