"""The inventory service's tasks: it follows pet events into its own counts."""

from __future__ import annotations

from models.db import unit_of_work
from models.inventory import apply_pet_status
from workers.celery_app import app


@app.task(name="inventory.on_pet_changed")
def on_pet_changed(event_id: str, event_type: str, pet_id: int, status: str | None,
                   version: int) -> bool:
    """Count the pet under its new status; older or repeated news changes nothing."""
    with unit_of_work() as session:
        return apply_pet_status(session, pet_id, status, version)
