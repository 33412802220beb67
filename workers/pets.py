"""The pet service's saga steps."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import pet
from models.db import unit_of_work
from workers.celery_app import app
from workers.steps import saga_step


@app.task(name="pets.announce_pet")
def announce_pet(saga_id: str, data: dict[str, Any]) -> bool:
    """After an order saga that did not complete: publish the pet's status as it is now,
    for the inventory, which counts an order's pet moves only when its saga completes."""
    with unit_of_work() as session:
        return pet.announce_pet(session, data["pet_id"])


@saga_step("pets.reserve_pet")
def reserve_pet(session: Session, order: dict[str, Any]) -> dict[str, Any]:
    """available -> pending for this order; refused when the pet is not available."""
    return {"pet_version": pet.reserve_pet(session, order["pet_id"], order["order_id"])}


@saga_step("pets.release_pet")
def release_pet(session: Session, order: dict[str, Any]) -> dict[str, Any]:
    """pending -> available, if this order holds the pet."""
    version = pet.release_pet(session, order["pet_id"], order["order_id"])
    return {"pet_version": version} if version is not None else {}


@saga_step("pets.sell_pet")
def sell_pet(session: Session, order: dict[str, Any]) -> dict[str, Any]:
    """pending -> sold to the order that reserved it."""
    return {"pet_version": pet.sell_pet(session, order["pet_id"], order["order_id"])}


@saga_step("pets.unsell_pet")
def unsell_pet(session: Session, order: dict[str, Any]) -> None:
    """Undo a sale: sold -> pending for the same order."""
    pet.unsell_pet(session, order["pet_id"], order["order_id"])
