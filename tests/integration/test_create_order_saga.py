"""The create-order saga behind POST /v2/store/order, with a real worker."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(autouse=True)
def running(worker):
    return worker


def add_pet(client, owner, **overrides) -> dict:
    body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": [], **overrides}
    response = client.post("/v2/pet", json=body, headers=owner)
    assert response.status_code == 200, response.json
    return response.json


def test_an_order_for_an_available_pet_completes(client, owner, customer):
    pet = add_pet(client, owner)
    response = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    assert response.status_code == 200, response.json
    order = response.json
    assert order["petId"] == pet["id"]
    assert order["status"] == "placed"
    assert order["quantity"] == 1
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "pending"
    assert client.get(f"/v2/store/order/{order['id']}", headers=customer).json == order
