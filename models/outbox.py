"""The transactional outbox.

A message that must follow a database change is written here in the same transaction;
the relay in `workers.relay` sends it after commit. Nothing else talks to the broker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, event, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base, utcnow
from models.events import Event

UNWRITTEN_KEY = "outbox_unwritten"  # added in this transaction, written just before commit
PENDING_KEY = "outbox_pending"  # written in this transaction, for the relay after commit


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


@dataclass(frozen=True)
class Message:
    """A message as the relay sends it: an outbox row, or one about to be written."""

    kind: str
    name: str
    payload: dict[str, Any]
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)


def _add(session: Session, kind: str, name: str, payload: dict[str, Any]) -> Message:
    message = Message(kind, name, payload)
    session.info.setdefault(UNWRITTEN_KEY, []).append(message)
    return message


def send_task(session: Session, name: str, **kwargs: Any) -> Message:
    """Ask a service to do something, once this transaction commits."""
    return _add(session, "task", name, kwargs)


def publish(session: Session, event: Event) -> Message:
    """Tell every subscriber that something happened, once this transaction commits."""
    return _add(session, "event", event.type, event.payload())


# One statement for a transaction's messages, however many: not an ORM flush of each.
WRITE = insert(OutboxMessage.__table__)


@event.listens_for(Session, "before_commit")
def _write(session: Session) -> None:
    messages = session.info.pop(UNWRITTEN_KEY, None)
    if messages:
        session.connection().execute(WRITE, [
            {"message_id": m.message_id, "kind": m.kind, "name": m.name, "payload": m.payload}
            for m in messages])
        session.info.setdefault(PENDING_KEY, []).extend(messages)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: object) -> None:
    session.info.pop(UNWRITTEN_KEY, None)
