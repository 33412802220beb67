"""The system-wide invariants tests check once work has settled."""

from __future__ import annotations

from sqlalchemy import func, select

from models.db import unit_of_work
from models.inventory import counts
from models.outbox import OutboxMessage
from models.pet import Pet
from models.saga import IN_FLIGHT, Saga


def pets_by_status() -> dict[str, int]:
    with unit_of_work() as session:
        rows = session.execute(select(Pet.status, func.count()).group_by(Pet.status)).all()
    return {"available": 0, "pending": 0, "sold": 0, **dict(rows)}


def settled() -> bool:
    """No message waits in the outbox, no saga is in flight, and the inventory agrees
    with the pets counted by status."""
    with unit_of_work() as session:
        unsent = session.scalar(select(func.count()).select_from(OutboxMessage)
                                .where(OutboxMessage.sent_at.is_(None)))
        in_flight = session.scalar(select(func.count()).select_from(Saga)
                                   .where(Saga.status.in_(IN_FLIGHT)))
        return unsent == 0 and in_flight == 0 and counts(session) == pets_by_status()
