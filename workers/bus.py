"""The event bus: which services hear which events, each through its own task and queue."""

from __future__ import annotations

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    "PET_CREATED": ("inventory.on_pet_changed",),
    "PET_UPDATED": ("inventory.on_pet_changed",),
    "PET_DELETED": ("inventory.on_pet_changed", "photos.on_pet_deleted"),
    # Reservations, releases and sales happen only in order sagas, whose own inventory
    # steps count them (see sagas.orders): no subscriber yet.
    "PET_RESERVED": (),
    "PET_RELEASED": (),
    "PET_SOLD": (),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return SUBSCRIBERS.get(event_type, ())
