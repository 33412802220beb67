"""The pet service's tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base, utcnow
from models.events import PET_STATUSES as STATUSES

AVAILABLE, PENDING, SOLD = STATUSES
# A pet in one of these states belongs to an order and may not be deleted.
HELD = (PENDING, SOLD)

pet_tags = Table(
    "pet_tags",
    Base.metadata,
    Column("pet_id", ForeignKey("pets.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Pet(Base):
    __tablename__ = "pets"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=AVAILABLE)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    photo_urls: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    # The order holding the pet while it is pending (an id: orders are another service's).
    order_id: Mapped[int | None]
    # Bumped on every change; events carry it so read models can ignore stale news.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    category: Mapped[Category | None] = relationship(lazy="joined")
    # Joined, like the category: a pet is read in one query.
    tags: Mapped[list[Tag]] = relationship(secondary=pet_tags, lazy="joined", order_by=Tag.id)

    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        Index("ix_pets_status", "status"),
    )
