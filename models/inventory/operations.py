"""The inventory's rules: newer news wins, so duplicates and reordering change nothing."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models.events import PET_STATUSES
from models.inventory.tables import InventoryPet


def _apply_news() -> Insert:
    news = insert(InventoryPet.__table__)  # pet_id, status and version come with each call
    return news.on_conflict_do_update(
        index_elements=[InventoryPet.pet_id],
        set_={"status": news.excluded.status, "version": news.excluded.version},
        where=InventoryPet.version < news.excluded.version,
    ).returning(InventoryPet.pet_id)


# Built once: every pet event and every order saga's last step runs it.
APPLY_NEWS = _apply_news()


def apply_pet_status(session: Session | Connection, pet_id: int, status: str | None,
                     version: int) -> bool:
    """Record the pet's status as of `version`; False when we already knew newer news."""
    # A statement of its own, in a step's transaction or alone: no ORM execution around it.
    connection = session.connection() if isinstance(session, Session) else session
    applied = connection.execute(
        APPLY_NEWS, {"pet_id": pet_id, "status": status, "version": version}).first()
    return applied is not None


def counts(session: Session) -> dict[str, int]:
    """Pets by status, every status present even when zero."""
    rows = session.execute(
        select(InventoryPet.status, func.count())
        .where(InventoryPet.status.is_not(None))
        .group_by(InventoryPet.status)
    ).all()
    return {**dict.fromkeys(PET_STATUSES, 0), **{status: n for status, n in rows}}
