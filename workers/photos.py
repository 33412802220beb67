"""The photo service's tasks."""

from __future__ import annotations

from typing import Any

from common.settings import get_settings
from models.db import unit_of_work
from models.photo import create_photos as record_photos
from models.photo import forget_pet_photos, stored_file
from workers.celery_app import app


@app.task(name="photos.create_photos")
def create_photos(pet_id: int, photos: list[dict[str, Any]]) -> int:
    """Record a pet's new photos; a photo recorded before is not recorded again."""
    with unit_of_work() as session:
        return record_photos(session, pet_id, photos)


@app.task(name="photos.on_pet_deleted")
def on_pet_deleted(event_id: str, event_type: str, pet_id: int, status: str | None,
                   version: int) -> int:
    """Forget a deleted pet's photos and remove its uploaded files."""
    with unit_of_work() as session:
        files = forget_pet_photos(session, pet_id)
    upload_dir = get_settings().upload_dir
    stored = [path for name in files if (path := stored_file(upload_dir, name))]
    for path in stored:
        path.unlink(missing_ok=True)
    return len(stored)
