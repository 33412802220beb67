"""The photo service's table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base, utcnow


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # The pet's id, not a foreign key: the pets table belongs to another service.
    pet_id: Mapped[int] = mapped_column(index=True)
    url: Mapped[str] = mapped_column(Text)
    # Set for uploaded images: the stored file's name, its type and size.
    file_name: Mapped[str | None] = mapped_column(String(100))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None]
    metadata_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("pet_id", "url"),)
