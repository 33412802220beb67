"""The inventory service's tasks: it follows pet events and takes part in order sagas."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models.db import one_statement
from models.inventory import apply_pet_status
from workers.celery_app import app
from workers.steps import saga_step


@app.task(name="inventory.on_pet_changed")
def on_pet_changed(event_id: str, event_type: str, pet_id: int, status: str | None,
                   version: int) -> bool:
    """Count the pet under its new status; older or repeated news changes nothing."""
    with one_statement() as connection:
        return apply_pet_status(connection, pet_id, status, version)


@saga_step("inventory.reserve_stock")
def reserve_stock(session: Session, order: dict[str, Any]) -> None:
    """Count the reserved pet as pending, as of the reservation's version."""
    apply_pet_status(session, order["pet_id"], "pending", order["pet_version"])


@saga_step("inventory.count_sale")
def count_sale(session: Session, order: dict[str, Any]) -> None:
    """Count the pet as sold, as of the sale's version."""
    apply_pet_status(session, order["pet_id"], "sold", order["pet_version"])


@saga_step("inventory.count_release")
def count_release(session: Session, order: dict[str, Any]) -> None:
    """Count a released pet available, as of the release's version (if it was released)."""
    if "pet_version" in order:
        apply_pet_status(session, order["pet_id"], "available", order["pet_version"])
