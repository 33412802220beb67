"""The event bus: which services hear which events, each through its own task and queue."""

from __future__ import annotations

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    "PET_CREATED": ("inventory.on_pet_changed",),
    "PET_UPDATED": ("inventory.on_pet_changed",),
    "PET_DELETED": ("inventory.on_pet_changed", "photos.on_pet_deleted"),
    "PET_RESERVED": ("inventory.on_pet_changed",),
    "PET_RELEASED": ("inventory.on_pet_changed",),
    "PET_SOLD": ("inventory.on_pet_changed",),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return SUBSCRIBERS.get(event_type, ())
