"""The outbox relay: sends committed messages to the broker and marks them sent.

Right after a commit it sends that transaction's messages; celery beat runs `outbox.relay`
every few seconds for whatever was left behind (broker down, process killed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

from kombu import Connection
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import bindparam, event, func, select, text, update
from sqlalchemy.engine import Connection as DatabaseConnection
from sqlalchemy.orm import Session

from models.db import bookkeeping_engine, unit_of_work, utcnow
from models.outbox import PENDING_KEY, Message, OutboxMessage
from petstore.settings import get_settings
from workers.bus import subscribers
from workers.celery_app import app

log = logging.getLogger(__name__)
BATCH = 200
LEFT_BEHIND = 2  # seconds after which the periodic relay takes a message over
BROKER_ERRORS = (KombuError, RedisError, OSError)


def _deliveries(message: Message | OutboxMessage) -> list[tuple[str, dict, str]]:
    """(task name, kwargs, stable task id) for each delivery the message makes."""
    if message.kind == "task":
        return [(message.name, message.payload, str(message.message_id))]
    event = {"event_id": str(message.message_id), "event_type": message.name, **message.payload}
    return [(task, event, str(uuid.uuid5(message.message_id, task)))
            for task in subscribers(message.name)]


@contextmanager
def broker() -> Iterator[Connection]:
    """A pooled broker connection, checked once without retries: when the broker is
    down the request that committed must not wait for it; the periodic relay retries."""
    with app.pool.acquire(block=True) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                     timeout=2)
        yield connection


def _publish(messages: Sequence[Message | OutboxMessage]) -> tuple[list[uuid.UUID], str | None]:
    """Send messages in order until the broker fails: (message ids sent, the error if it
    did)."""
    copies = 2 if get_settings().duplicate_deliveries else 1
    sent: list[uuid.UUID] = []
    try:
        with broker() as connection:
            for message in messages:
                for name, kwargs, task_id in _deliveries(message) * copies:
                    app.send_task(name, kwargs=kwargs, task_id=task_id, retry=False,
                                  connection=connection)
                sent.append(message.message_id)
    except BROKER_ERRORS as exc:
        log.warning("outbox relay: broker unavailable, %d left pending: %s",
                    len(messages) - len(sent), exc)
        return sent, f"{type(exc).__name__}: {exc}"[:500]
    return sent, None


# Built once: building a statement costs a step more than running this one does.
MARK_SENT = update(OutboxMessage).where(
    OutboxMessage.message_id.in_(bindparam("sent", expanding=True)),
    OutboxMessage.sent_at.is_(None)).values(sent_at=func.now())


def _mark(connection: Session | DatabaseConnection, sent: list[uuid.UUID],
          failed: uuid.UUID | None, error: str | None) -> None:
    if sent:
        connection.execute(MARK_SENT, {"sent": sent})
    if failed is not None:
        connection.execute(update(OutboxMessage).where(OutboxMessage.message_id == failed).values(
            attempts=OutboxMessage.attempts + 1, last_error=error))


def relay_committed(messages: Sequence[Message]) -> int:
    """Send a just-committed transaction's messages, already in memory."""
    sent, error = _publish(messages)
    failed = messages[len(sent)].message_id if error else None
    # Losing this write in a crash only sends those messages again, with the same ids.
    with bookkeeping_engine().connect() as connection:
        _mark(connection, sent, failed, error)
    return len(sent)


def relay() -> int:
    """Send pending messages left behind (older than a moment, so as not to race the
    after-commit relay); returns how many went out. SKIP LOCKED keeps concurrent relays
    from sending one message twice."""
    with unit_of_work() as session:
        session.execute(text("SET LOCAL synchronous_commit = off"))  # as in relay_committed
        messages = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None),
                   OutboxMessage.created_at < utcnow() - timedelta(seconds=LEFT_BEHIND))
            .order_by(OutboxMessage.id).limit(BATCH).with_for_update(skip_locked=True)).all()
        sent, error = _publish(messages)
        _mark(session, sent, messages[len(sent)].message_id if error else None, error)
        return len(sent)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if pending:
        try:
            relay_committed(pending)
        except Exception:  # the periodic relay will send it; the commit stands
            log.exception("outbox relay after commit failed")


def _after_rollback(session: Session, previous_transaction: object) -> None:
    session.info.pop(PENDING_KEY, None)


def install() -> None:
    """Relay each transaction's messages as soon as it commits."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback)


@app.task(name="outbox.relay", ignore_result=True)
def relay_pending() -> int:
    """Send what the after-commit relay could not."""
    total = 0
    while sent := relay():
        total += sent
        if sent < BATCH:
            break
    return total


install()
