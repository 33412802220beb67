"""The transactional outbox.

A message that must follow a database change is written here in the same transaction;
the relay in `workers.relay` sends it after commit. Nothing else talks to the broker.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base, utcnow
from models.events import Event

PENDING_KEY = "outbox_pending"


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    message_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(8))  # "task" or "event"
    name: Mapped[str] = mapped_column(String(100))  # task name or event type
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outbox_pending", "id", postgresql_where=text("sent_at IS NULL")),
    )


def _add(session: Session, kind: str, name: str, payload: dict[str, Any]) -> OutboxMessage:
    message = OutboxMessage(message_id=uuid.uuid4(), kind=kind, name=name, payload=payload)
    session.add(message)
    session.info.setdefault(PENDING_KEY, []).append(message)
    return message


def send_task(session: Session, name: str, **kwargs: Any) -> OutboxMessage:
    """Ask a service to do something, once this transaction commits."""
    return _add(session, "task", name, kwargs)


def publish(session: Session, event: Event) -> OutboxMessage:
    """Tell every subscriber that something happened, once this transaction commits."""
    return _add(session, "event", event.type, event.payload())
