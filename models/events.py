"""The events services publish, in the past tense, and who hears them. Their `type` is the
wire name."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

# The statuses a pet can be in; shared vocabulary of the pet and inventory services.
PET_STATUSES = ("available", "pending", "sold")


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PetChanged(Event):
    """A pet's status as of `version`; `status` is None once the pet is gone."""

    pet_id: int
    status: str | None
    version: int


@dataclass(frozen=True)
class PetCreated(PetChanged):
    type: ClassVar[str] = "PET_CREATED"


@dataclass(frozen=True)
class PetUpdated(PetChanged):
    type: ClassVar[str] = "PET_UPDATED"


@dataclass(frozen=True)
class PetDeleted(PetChanged):
    type: ClassVar[str] = "PET_DELETED"


@dataclass(frozen=True)
class PetReserved(PetChanged):
    type: ClassVar[str] = "PET_RESERVED"


@dataclass(frozen=True)
class PetReleased(PetChanged):
    type: ClassVar[str] = "PET_RELEASED"


@dataclass(frozen=True)
class OrderChanged(Event):
    order_id: int
    pet_id: int


@dataclass(frozen=True)
class OrderPlaced(OrderChanged):
    type: ClassVar[str] = "ORDER_PLACED"


@dataclass(frozen=True)
class OrderCancelled(OrderChanged):
    type: ClassVar[str] = "ORDER_CANCELLED"


@dataclass(frozen=True)
class OrderApproved(OrderChanged):
    type: ClassVar[str] = "ORDER_APPROVED"


@dataclass(frozen=True)
class OrderDelivered(OrderChanged):
    type: ClassVar[str] = "ORDER_DELIVERED"


@dataclass(frozen=True)
class PetSold(PetChanged):
    type: ClassVar[str] = "PET_SOLD"


# Which tasks hear each event, one per subscribing service (each on its own queue).
SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    PetCreated.type: ("inventory.on_pet_changed",),
    PetUpdated.type: ("inventory.on_pet_changed",),
    PetDeleted.type: ("inventory.on_pet_changed", "photos.on_pet_deleted"),
    # Reservations, releases and sales happen only in order sagas, whose own inventory
    # steps count them (see sagas.orders): no subscriber yet.
    PetReserved.type: (),
    PetReleased.type: (),
    PetSold.type: (),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return SUBSCRIBERS.get(event_type, ())
