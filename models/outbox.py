"""The transactional outbox.

A message that must follow a database change is written here in the same transaction;
the relay in `workers.relay` sends it after commit. Nothing else talks to the broker.

`sent_at` says the relay is done with a message: it published it, or (for a saga's
command) the command's receiver took it, in the transaction that handled it. A receiver's
confirmation costs a statement it runs anyway; a relay's mark would cost a round trip of
its own for every step.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Index,
    Insert,
    String,
    Text,
    Update,
    bindparam,
    case,
    column,
    event,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base, utcnow
from models.events import Event, subscribers

UNWRITTEN_KEY = "outbox_unwritten"  # added in this transaction, not written yet
PENDING_KEY = "outbox_pending"  # written in this transaction, for the relay after commit
TASK, EVENT, COMMAND = "task", "event", "command"


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    message_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    # "task", "event", or "command": a saga's command, which its receiver confirms.
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))  # task name or event type
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)  # publishes that failed
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

    @property
    def unheard(self) -> bool:
        """An event no service subscribes to: stored as sent, for the record."""
        return self.kind == EVENT and not subscribers(self.name)


def _add(session: Session, kind: str, name: str, payload: dict[str, Any]) -> Message:
    message = Message(kind, name, payload)
    session.info.setdefault(UNWRITTEN_KEY, []).append(message)
    return message


def send_task(session: Session, name: str, **kwargs: Any) -> Message:
    """Ask a service to do something, once this transaction commits."""
    return _add(session, TASK, name, kwargs)


def send_command(session: Session, name: str, **kwargs: Any) -> Message:
    """Send a saga's command once this transaction commits. It is sent as the task whose
    id is its `message_id`; the receiver confirms it with that id (`CONFIRM`)."""
    return _add(session, COMMAND, name, kwargs)


def publish(session: Session, event: Event) -> Message:
    """Tell every subscriber that something happened, once this transaction commits."""
    return _add(session, EVENT, event.type, event.payload())


def take_unwritten(session: Session) -> list[Message]:
    """This transaction's messages not written yet, for a statement that writes them itself
    (`WRITE_FROM_JSON`); the relay still sends them after commit."""
    messages = session.info.pop(UNWRITTEN_KEY, [])
    session.info.setdefault(PENDING_KEY, []).extend(messages)
    return messages


def as_json(messages: list[Message]) -> list[dict[str, Any]]:
    """The `outbox` parameter of `WRITE_FROM_JSON`."""
    return [{"message_id": str(m.message_id), "kind": m.kind, "name": m.name,
             "payload": m.payload, "sent": m.unheard} for m in messages]


OUTBOX = OutboxMessage.__table__
# One statement for a transaction's messages, however many: not an ORM flush of each.
WRITE = insert(OUTBOX)


def _write_from_json() -> Insert:
    rows = func.jsonb_to_recordset(bindparam("outbox", type_=JSONB)).table_valued(
        column("message_id", OUTBOX.c.message_id.type), column("kind", String),
        column("name", String), column("payload", JSONB), column("sent", Boolean),
    ).render_derived(with_types=True)
    return insert(OUTBOX).from_select(
        ["message_id", "kind", "name", "payload", "sent_at", "created_at", "attempts"],
        select(rows.c.message_id, rows.c.kind, rows.c.name, rows.c.payload,
               case((rows.c.sent, func.now())), func.now(), literal(0)),
        include_defaults=False)


# Messages given as one JSON parameter: a part of another statement (a CTE) can write them.
WRITE_FROM_JSON = _write_from_json()


def _confirm() -> Update:
    return (update(OUTBOX).where(OUTBOX.c.message_id == bindparam("confirmed"),
                                 OUTBOX.c.sent_at.is_(None))
            .values(sent_at=func.now()))


# A receiver takes its command: the relay need not send it again.
CONFIRM = _confirm()


def supersede(connection: Connection, *, saga_of: str) -> None:
    """Stop awaiting a saga's unconfirmed commands: the sweeper dispatches its step anew."""
    connection.execute(
        update(OUTBOX).where(OUTBOX.c.sent_at.is_(None), OUTBOX.c.kind == COMMAND,
                             OUTBOX.c.payload["saga_id"].astext == saga_of)
        .values(sent_at=func.now(), last_error="superseded: the step was dispatched again"))


@event.listens_for(Session, "before_commit")
def _write(session: Session) -> None:
    messages = session.info.pop(UNWRITTEN_KEY, None)
    if messages:
        now = utcnow()
        session.connection().execute(WRITE, [
            {"message_id": m.message_id, "kind": m.kind, "name": m.name, "payload": m.payload,
             "sent_at": now if m.unheard else None}
            for m in messages])
        session.info.setdefault(PENDING_KEY, []).extend(messages)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: object) -> None:
    session.info.pop(UNWRITTEN_KEY, None)
