"""What the photo service does. Both operations are idempotent by construction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.photo.images import STORED_NAME
from models.photo.tables import Photo

PHOTO_FIELDS = ("url", "file_name", "content_type", "size", "metadata_text")


def create_photos(session: Session, pet_id: int, photos: Sequence[dict[str, Any]]) -> int:
    """Record the pet's photos; a photo recorded before is left as it is. A file name that
    is not one the service makes for uploads is not recorded (the URL alone is)."""
    if not photos:
        return 0
    rows = [{"pet_id": pet_id, **{k: p.get(k) for k in PHOTO_FIELDS}} for p in photos]
    for row in rows:
        if row["file_name"] is not None and not STORED_NAME.fullmatch(row["file_name"]):
            row["file_name"] = None
    created = session.execute(
        insert(Photo).values(rows).on_conflict_do_nothing().returning(Photo.id)
    ).all()
    return len(created)


def forget_pet_photos(session: Session, pet_id: int) -> list[str]:
    """Drop a deleted pet's photos; returns the stored files no longer needed."""
    gone = session.execute(
        delete(Photo).where(Photo.pet_id == pet_id).returning(Photo.file_name)
    ).scalars()
    return [name for name in gone if name]


def photos_of(session: Session, pet_id: int) -> Sequence[Photo]:
    return session.scalars(select(Photo).where(Photo.pet_id == pet_id).order_by(Photo.id)).all()
