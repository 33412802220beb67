"""Whether a test's own work has settled: each test judges the data it made, so what
another test left behind never decides its result."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import or_, select

from models.db import unit_of_work
from models.inventory import InventoryPet
from models.outbox import OutboxMessage
from models.pet import Pet
from models.saga import IN_FLIGHT, Saga


def settled(*, pets: Iterable[int] = (), sagas: Iterable[str | uuid.UUID] = ()) -> bool:
    """The work about these pets and sagas is done: none of the sagas (those named, and
    every saga about one of the pets) is in flight, no message about them waits in the
    outbox, and the inventory records each pet as it is (its status at its version; a
    deleted pet as gone)."""
    pet_ids = {str(pet) for pet in pets}
    named = {uuid.UUID(str(saga)) for saga in sagas}
    if not (pet_ids or named):
        raise ValueError("settled() judges a test's own work: name its pets or its sagas")
    with unit_of_work() as session:
        found = session.execute(select(Saga.id, Saga.status).where(or_(
            Saga.id.in_(named), Saga.payload["pet_id"].astext.in_(pet_ids)))).all()
        if any(status in IN_FLIGHT for _, status in found):
            return False
        saga_ids = {str(saga) for saga in named} | {str(saga) for saga, _ in found}
        waiting = session.scalar(select(OutboxMessage.id).where(
            OutboxMessage.sent_at.is_(None),
            or_(OutboxMessage.payload["pet_id"].astext.in_(pet_ids),
                OutboxMessage.payload["saga_id"].astext.in_(saga_ids))).limit(1))
        if waiting is not None:
            return False
        ids = [int(pet) for pet in pet_ids]
        now = {pet.id: (pet.status, pet.version)
               for pet in session.execute(select(Pet.id, Pet.status, Pet.version)
                                          .where(Pet.id.in_(ids)))}
        recorded = {row.pet_id: (row.status, row.version)
                    for row in session.scalars(select(InventoryPet)
                                               .where(InventoryPet.pet_id.in_(ids)))}
    return all(recorded.get(pet) == now[pet] if pet in now
               else pet in recorded and recorded[pet][0] is None for pet in ids)
