"""The inventory service's table: the last known status of every pet it heard of."""

from __future__ import annotations

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base


class InventoryPet(Base):
    __tablename__ = "inventory_pets"

    pet_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # None once the pet is deleted; the row stays as a tombstone so late news is ignored.
    status: Mapped[str | None] = mapped_column(String(16))
    version: Mapped[int]

    __table_args__ = (Index("ix_inventory_pets_status", "status"),)
