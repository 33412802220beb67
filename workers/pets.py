"""The pet service's saga steps."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import pet
from workers.steps import saga_step


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
