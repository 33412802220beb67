"""Pet events reach the inventory and photo services through the outbox and a real worker."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from models.db import unit_of_work
from models.inventory import InventoryPet, counts
from models.outbox import OutboxMessage
from models.photo import photos_of
from tests.support.broker import broker_down
from tests.support.system import settled
from tests.support.waiting import eventually
from workers import relay
from workers.celery_app import app as celery

pytestmark = pytest.mark.broker


@pytest.fixture(autouse=True)
def running(worker):
    return worker


def a_pet(**overrides):
    return {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": [], **overrides}


def add(client, owner, **overrides) -> dict:
    response = client.post("/v2/pet", json=a_pet(**overrides), headers=owner)
    assert response.status_code == 200, response.json
    return response.json


def inventory_status(pet_id: int) -> InventoryPet | None:
    with unit_of_work() as session:
        return session.get(InventoryPet, pet_id)


def inventory_counts() -> dict[str, int]:
    with unit_of_work() as session:
        return counts(session)


def test_the_inventory_follows_a_pet_through_its_life(client, owner):
    pet = add(client, owner)
    eventually(lambda: (row := inventory_status(pet["id"])) and row.status == "available")
    client.post(f"/v2/pet/{pet['id']}", data={"status": "sold"}, headers=owner)
    eventually(lambda: inventory_status(pet["id"]).status == "sold")
    client.post(f"/v2/pet/{pet['id']}", data={"status": "available"}, headers=owner)
    client.delete(f"/v2/pet/{pet['id']}", headers=owner)
    eventually(lambda: inventory_status(pet["id"]).status is None)
    eventually(lambda: settled(pets=[pet["id"]]))
    # The store's inventory is the inventory service's count.
    eventually(lambda: client.get("/v2/store/inventory").json == inventory_counts())


def test_the_photo_service_records_a_pets_photos(client, owner):
    pet = add(client, owner, photoUrls=["http://img/a.png", "http://img/b.png"])
    replaced = {**a_pet(photoUrls=["http://img/b.png", "http://img/c.png"]), "id": pet["id"]}
    assert client.put("/v2/pet", json=replaced, headers=owner).status_code == 200

    def urls() -> list[str]:
        with unit_of_work() as session:
            return [photo.url for photo in photos_of(session, pet["id"])]

    eventually(lambda: len(urls()) == 3)
    assert sorted(urls()) == ["http://img/a.png", "http://img/b.png", "http://img/c.png"]
    client.delete(f"/v2/pet/{pet['id']}", headers=owner)
    eventually(lambda: urls() == [])


def test_an_event_delivered_twice_changes_nothing_the_second_time(client, owner, running):
    pet = add(client, owner)
    eventually(lambda: inventory_status(pet["id"]) is not None)
    client.post(f"/v2/pet/{pet['id']}", data={"status": "pending"}, headers=owner)
    eventually(lambda: inventory_status(pet["id"]).status == "pending")

    # The creation event again, twice, as a broker re-delivery would bring it.
    with unit_of_work() as session:
        created = session.scalars(select(OutboxMessage).where(
            OutboxMessage.name == "PET_CREATED",
            OutboxMessage.payload["pet_id"].as_string() == str(pet["id"]))).one()
    replay = {"event_id": str(created.message_id), "event_type": created.name, **created.payload}
    for _ in range(2):
        celery.send_task("inventory.on_pet_changed", kwargs=replay)
    eventually(running.idle)
    assert inventory_status(pet["id"]).status == "pending"
    eventually(lambda: settled(pets=[pet["id"]]))


def test_a_broker_outage_delays_an_event_and_loses_nothing(client, owner, monkeypatch):
    monkeypatch.setattr(relay, "broker", broker_down)
    pet = add(client, owner)  # answered while the broker is down: the write does not wait

    # The publish after the commit failed, and the message says so. (The worker's beat may
    # send it at any moment from now: what it records stays.)
    with unit_of_work() as session:
        message = session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload["pet_id"].as_string() == str(pet["id"]))).one()
    assert message.attempts == 1
    assert "refused" in message.last_error.lower()

    monkeypatch.undo()
    # The worker's beat runs the relay, which reaches the broker: the event arrives.
    eventually(lambda: (row := inventory_status(pet["id"])) and row.status == "available")
    eventually(lambda: settled(pets=[pet["id"]]))
