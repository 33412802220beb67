"""Approve, deliver and cancel: the rest of an order's life, as sagas with a real worker."""

from __future__ import annotations

import uuid

import pytest

from tests.support.system import settled
from tests.support.waiting import eventually


@pytest.fixture(autouse=True)
def running(worker):
    return worker


@pytest.fixture
def placed(client, owner, customer):
    """A fresh pet and a placed order for it: (pet, order)."""
    body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": []}
    pet = client.post("/v2/pet", json=body, headers=owner).json
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    assert response.status_code == 200, response.json
    return pet, response.json


def pet_status(client, pet) -> str:
    return client.get(f"/v2/pet/{pet['id']}").json["status"]


def test_approving_sells_the_pet_and_delivering_completes_the_order(client, owner, placed):
    pet, order = placed
    approved = client.post(f"/v2/store/order/{order['id']}/approve", headers=owner)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved"
    assert pet_status(client, pet) == "sold"
    delivered = client.post(f"/v2/store/order/{order['id']}/deliver", headers=owner)
    assert delivered.status_code == 200, delivered.json
    assert (delivered.json["status"], delivered.json["complete"]) == ("delivered", True)
    eventually(lambda: settled(pets=[pet["id"]]))


def test_a_customer_cancels_a_placed_order_and_the_pet_is_available_again(client, customer,
                                                                         placed):
    pet, order = placed
    cancelled = client.delete(f"/v2/store/order/{order['id']}", headers=customer)
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"
    assert pet_status(client, pet) == "available"
    eventually(lambda: settled(pets=[pet["id"]]))


def test_the_wrong_state_is_a_conflict(client, owner, customer, placed):
    pet, order = placed
    url = f"/v2/store/order/{order['id']}"
    assert client.post(f"{url}/deliver", headers=owner).status_code == 409  # not approved
    assert client.post(f"{url}/approve", headers=owner).status_code == 200
    for again in (client.post(f"{url}/approve", headers=owner),
                  client.delete(url, headers=customer)):
        assert again.status_code == 409, again.json
        assert "approved" in again.json["message"]
    assert client.post(f"{url}/deliver", headers=owner).status_code == 200
    assert client.post(f"{url}/deliver", headers=owner).status_code == 409
    assert pet_status(client, pet) == "sold"
    eventually(lambda: settled(pets=[pet["id"]]))


def test_a_cancelled_order_is_not_cancelled_or_approved_again(client, owner, customer, placed):
    pet, order = placed
    url = f"/v2/store/order/{order['id']}"
    assert client.delete(url, headers=customer).status_code == 200
    assert client.delete(url, headers=customer).status_code == 409
    assert client.post(f"{url}/approve", headers=owner).status_code == 409
    eventually(lambda: settled(pets=[pet["id"]]))


def test_only_the_owner_approves_and_delivers(client, customer, placed):
    _, order = placed
    for action in ("approve", "deliver"):
        response = client.post(f"/v2/store/order/{order['id']}/{action}", headers=customer)
        assert response.status_code == 403


def test_a_customer_cannot_cancel_another_customers_order(client, placed, sign_up):
    _, order = placed
    stranger = sign_up()[2]
    assert client.delete(f"/v2/store/order/{order['id']}", headers=stranger).status_code == 403


def test_the_owner_cancels_any_placed_order(client, owner, placed):
    pet, order = placed
    assert client.delete(f"/v2/store/order/{order['id']}", headers=owner).status_code == 200
    assert pet_status(client, pet) == "available"
    eventually(lambda: settled(pets=[pet["id"]]))


def test_changing_a_missing_order_is_not_found(client, owner):
    for response in (client.post(f"/v2/store/order/{2**62}/approve", headers=owner),
                     client.post(f"/v2/store/order/{2**62}/deliver", headers=owner),
                     client.delete(f"/v2/store/order/{2**62}", headers=owner)):
        assert response.status_code == 404


def test_a_cancelled_pet_can_be_ordered_again(client, customer, placed, sign_up):
    pet, order = placed
    client.delete(f"/v2/store/order/{order['id']}", headers=customer)
    second = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=sign_up()[2])
    assert second.status_code == 200, second.json
    assert second.json["id"] != order["id"]
    eventually(lambda: settled(pets=[pet["id"]]))
