"""The create-order saga behind POST /v2/store/order, with a real worker."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from models.db import unit_of_work
from models.order import Order
from models.outbox import OutboxMessage
from models.saga import Saga
from tests.support.system import settled
from tests.support.waiting import eventually
from workers.celery_app import app as celery

pytestmark = pytest.mark.broker


@pytest.fixture(autouse=True)
def running(worker):
    return worker


def add_pet(client, owner, **overrides) -> dict:
    body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": [], **overrides}
    response = client.post("/v2/pet", json=body, headers=owner)
    assert response.status_code == 200, response.json
    return response.json


def saga_of(order_id: int) -> Saga:
    with unit_of_work() as session:
        return session.scalars(select(Saga).where(
            Saga.payload["order_id"].as_string() == str(order_id))).one()


def test_an_order_for_an_available_pet_completes(client, owner, customer):
    pet = add_pet(client, owner)
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    assert response.status_code == 200, response.json
    order = response.json
    assert (order["petId"], order["status"], order["quantity"]) == (pet["id"], "placed", 1)
    assert order["complete"] is False
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "pending"
    assert client.get(f"/v2/store/order/{order['id']}", headers=customer).json == order
    saga = saga_of(order["id"])
    assert (saga.kind, saga.status) == ("create_order", "completed")
    eventually(lambda: settled(pets=[pet["id"]]))


def test_an_order_gets_the_id_its_client_chose_and_a_taken_one_is_a_409(client, owner,
                                                                        customer):
    chosen = random.randint(10**12, 2**62)
    first, second = add_pet(client, owner), add_pet(client, owner)
    response = client.post("/v2/store/order", json={"id": chosen, "petId": first["id"]},
                           headers=customer)
    assert response.status_code == 200, response.json
    assert response.json["id"] == chosen
    again = client.post("/v2/store/order", json={"id": chosen, "petId": second["id"]},
                        headers=customer)
    assert again.status_code == 409
    assert f"Order {chosen} already exists" in again.json["message"]
    assert client.get(f"/v2/pet/{second['id']}").json["status"] == "available"
    eventually(lambda: settled(pets=[first["id"], second["id"]]))


def test_the_owner_reads_a_sagas_step_log(client, owner, customer, sign_up):
    pet = add_pet(client, owner)
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    saga_id = saga_of(response.json["id"]).id
    assert response.headers["Saga-Id"] == str(saga_id)
    log = client.get(f"/v2/sagas/{saga_id}", headers=owner).json
    assert log["status"] == "completed"
    assert [(s["step"], s["phase"], s["status"]) for s in log["steps"]] == [
        ("reserve_pet", "action", "succeeded"),
        ("place_order", "action", "succeeded"),
        ("count_reservation", "action", "succeeded"),
    ]
    assert [s["taskName"] for s in log["steps"]] == [
        "pets.reserve_pet", "orders.place_order", "inventory.reserve_stock"]
    assert all(s["taskId"] for s in log["steps"])
    listed = client.get("/v2/sagas", query_string={"kind": "create_order",
                                                   "status": "completed"}, headers=owner)
    assert listed.status_code == 200
    assert "X-Pagination" in listed.headers
    assert all(s["status"] == "completed" for s in listed.json)
    assert client.get(f"/v2/sagas/{saga_id}", headers=customer).json == log  # their own
    assert client.get(f"/v2/sagas/{saga_id}", headers=sign_up()[2]).status_code == 404
    assert client.get("/v2/sagas", headers=customer).status_code == 403
    assert client.get(f"/v2/sagas/{uuid.uuid4()}", headers=owner).status_code == 404


def test_a_sagas_step_log_shows_which_worker_ran_each_attempt_and_for_how_long(
        client, owner, customer, running):
    pet = add_pet(client, owner)
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    assert response.status_code == 200, response.json
    steps = client.get(f"/v2/sagas/{response.headers['Saga-Id']}", headers=owner).json["steps"]
    assert [(s["status"], s["worker"]) for s in steps] == [("succeeded", running.name)] * 3
    assert all(isinstance(s["durationMs"], int) and s["durationMs"] >= 0 for s in steps)
    eventually(lambda: settled(pets=[pet["id"]]))


def test_an_order_for_a_pet_that_is_not_available_is_a_conflict(client, owner, customer):
    pet = add_pet(client, owner, status="sold")
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    assert response.status_code == 409, response.json
    assert "not available" in response.json["message"]
    assert "orderId" not in response.json  # never placed
    with unit_of_work() as session:
        assert session.get(Saga, uuid.UUID(response.json["sagaId"])).status == "refused"


def test_an_order_for_a_missing_pet_is_not_found(client, customer):
    response = client.post("/v2/store/order", json={"petId": 2**62}, headers=customer)
    assert response.status_code == 404, response.json
    assert response.json["sagaId"]


@pytest.mark.parametrize(("body", "status"), [
    ({}, 400), ({"petId": 1, "quantity": 2}, 400), ({"petId": "x"}, 422), ({"petId": 0}, 422),
    ({"petId": 1, "shipDate": "tomorrow"}, 422)])
def test_a_bad_order_is_refused_and_starts_no_saga(client, sign_up, body, status):
    username, _, customer = sign_up()
    response = client.post("/v2/store/order", json=body, headers=customer)
    assert response.status_code == status
    assert response.json["message"]
    user_id = client.get(f"/v2/user/{username}", headers=customer).json["id"]
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Saga)
                              .where(Saga.started_by == user_id)) == 0


def test_placing_an_order_needs_a_login(client, owner):
    pet = add_pet(client, owner)
    assert client.post("/v2/store/order", json={"petId": pet["id"]}).status_code == 401


def test_respond_async_answers_202_with_the_saga_to_poll(client, owner, customer):
    pet = add_pet(client, owner)
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers={
        **customer, "Prefer": "respond-async"})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/v2/sagas/{response.json['sagaId']}"
    order_id = response.json["orderId"]
    eventually(lambda: client.get(f"/v2/store/order/{order_id}",
                                  headers=customer).status_code == 200)
    eventually(lambda: settled(pets=[pet["id"]]))


def test_an_idempotency_key_returns_the_first_answer_and_starts_one_saga(client, owner,
                                                                         customer):
    pet = add_pet(client, owner)
    headers = {**customer, "Idempotency-Key": uuid.uuid4().hex}
    first = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=headers)
    again = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json == again.json
    with unit_of_work() as session:
        sagas = session.scalar(select(func.count()).select_from(Saga).where(
            Saga.payload["pet_id"].as_string() == str(pet["id"])))
    assert sagas == 1
    other = client.post("/v2/store/order", json={"petId": pet["id"] + 1}, headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json["message"]


def test_a_customer_cannot_read_another_customers_order(client, owner, customer, sign_up):
    pet = add_pet(client, owner)
    order = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer).json
    stranger = sign_up()[2]
    assert client.get(f"/v2/store/order/{order['id']}", headers=stranger).status_code == 403
    assert client.get(f"/v2/store/order/{order['id']}", headers=owner).status_code == 200
    assert client.get(f"/v2/store/order/{2**62}", headers=owner).status_code == 404


def test_twenty_clients_racing_for_one_pet_yield_exactly_one_order(app, client, owner,
                                                                   sign_up):
    pet = add_pet(client, owner)
    customers = [sign_up()[2] for _ in range(20)]

    def order(headers: dict) -> int:
        return app.test_client().post("/v2/store/order", json={"petId": pet["id"]},
                                      headers=headers).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = sorted(pool.map(order, customers))
    assert answers == [200] + [409] * 19
    with unit_of_work() as session:
        live = session.scalar(select(func.count()).select_from(Order).where(
            Order.pet_id == pet["id"], Order.status == "placed"))
    assert live == 1
    eventually(lambda: settled(pets=[pet["id"]]), timeout=30)


def test_every_step_delivered_twice_changes_nothing(client, owner, customer, running):
    pet = add_pet(client, owner)
    order = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer).json
    saga = saga_of(order["id"])
    with unit_of_work() as session:
        sent = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "command",
            OutboxMessage.payload["saga_id"].as_string() == str(saga.id))).all()
    assert len(sent) == 3
    for message in sent:  # every command again, as a broker re-delivery would bring it
        celery.send_task(message.name, kwargs=message.payload)
    eventually(running.idle)
    after = saga_of(order["id"])
    assert (after.status, after.version) == ("completed", saga.version)
    assert client.get(f"/v2/store/order/{order['id']}", headers=customer).json == order
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "pending"
    eventually(lambda: settled(pets=[pet["id"]]))
