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
def release_pet(session: Session, order: dict[str, Any]) -> None:
    """pending -> available, if this order holds the pet."""
    pet.release_pet(session, order["pet_id"], order["order_id"])
