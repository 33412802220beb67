"""The outbox relay: sends committed messages to the broker and marks them sent.

Right after a commit it sends that transaction's messages; celery beat runs `outbox.relay`
every few seconds for whatever was left behind (broker down, process killed). A saga's
command is marked by its receiver, in the transaction that handles it, not by the relay:
the periodic relay sends one again only when publishing it failed, or when it has waited
unconfirmed so long that it must have been lost on the way (the sweeper will usually have
dispatched its step anew by then, and its receiver ignores a stale one).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from amqp.exceptions import AMQPError, MessageNacked
from kombu import Connection
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import Select, bindparam, event, func, or_, select, text, update
from sqlalchemy.engine import Connection as DatabaseConnection
from sqlalchemy.orm import Session

from common import tracing
from models.db import bookkeeping_engine, unit_of_work, utcnow
from models.events import subscribers
from models.outbox import COMMAND, EVENT, PENDING_KEY, Message, OutboxMessage
from sagas import faults
from workers.celery_app import app, housekeeping

log = logging.getLogger(__name__)
BATCH = 200
LEFT_BEHIND = 2  # seconds after which the periodic relay takes a message over
UNCONFIRMED = 60  # seconds after which a command published but never taken is sent again
# Either broker's failures; a publish RabbitMQ did not confirm is one (MessageNacked).
BROKER_ERRORS = (KombuError, RedisError, AMQPError, MessageNacked, OSError)


def _deliveries(message: Message | OutboxMessage) -> list[tuple[str, dict, str]]:
    """(task name, kwargs, stable task id) for each delivery the message makes."""
    if message.kind != EVENT:  # a task or a command: one delivery
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


def _shown(kwargs: dict[str, Any]) -> str:
    """The kwargs as Flower shows them. They are JSON, so the built-in repr is safe, and
    it is some twenty times cheaper than the saferepr Celery would otherwise run on
    a command's saga state at every publish."""
    return repr(kwargs)[:app.amqp.kwargsrepr_maxsize]


# Celery's send, doubled when the test knob for duplicate deliveries is on.
_send = faults.publishing(app.send_task)


def _publish(messages: Sequence[Message | OutboxMessage]) -> tuple[list[uuid.UUID], str | None]:
    """Send messages in order until the broker fails: (message ids sent, the error if it
    did)."""
    sent: list[uuid.UUID] = []
    try:
        with broker() as connection:
            for message in messages:
                for name, kwargs, task_id in _deliveries(message):
                    # A saga's messages are published in its trace (when traced).
                    with tracing.in_saga(kwargs["saga_id"]) if "saga_id" in kwargs else (
                            nullcontext()):
                        _send(name, kwargs=kwargs, task_id=task_id, retry=False,
                              connection=connection, kwargsrepr=_shown(kwargs))
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
          failed: list[uuid.UUID], error: str | None) -> None:
    if sent:
        connection.execute(MARK_SENT, {"sent": sent})
    if failed:
        connection.execute(update(OutboxMessage).where(OutboxMessage.message_id.in_(failed))
                           .values(attempts=OutboxMessage.attempts + 1, last_error=error))


def relay_committed(messages: Sequence[Message]) -> int:
    """Send a just-committed transaction's messages, already in memory."""
    sent, error = _publish(messages)
    # A command's receiver marks it, and an event nobody hears was written as sent.
    to_mark = [m.message_id for m in messages[:len(sent)] if m.kind != COMMAND and not m.unheard]
    failed = [m.message_id for m in messages[len(sent):]]
    if to_mark or failed:
        # Losing this write in a crash only sends those messages again, with the same ids.
        with bookkeeping_engine().connect() as connection:
            _mark(connection, to_mark, failed, error)
    return len(sent)


def left_behind(now: datetime) -> Select:
    """Messages the after-commit relay left behind: unsent a moment after their commit (not
    to race it); of the commands, those it failed to publish, or that nobody took for so
    long that they must have been lost."""
    return select(OutboxMessage).where(
        OutboxMessage.sent_at.is_(None),
        OutboxMessage.created_at < now - timedelta(seconds=LEFT_BEHIND),
        or_(OutboxMessage.kind != COMMAND, OutboxMessage.attempts > 0,
            OutboxMessage.created_at < now - timedelta(seconds=UNCONFIRMED)))


def relay() -> int:
    """Send pending messages left behind (older than a moment, so as not to race the
    after-commit relay); returns how many went out. SKIP LOCKED keeps concurrent relays
    from sending one message twice."""
    with unit_of_work() as session:
        session.execute(text("SET LOCAL synchronous_commit = off"))  # as in relay_committed
        messages = session.scalars(
            left_behind(utcnow()).order_by(OutboxMessage.id).limit(BATCH)
            .with_for_update(skip_locked=True)).all()
        sent, error = _publish(messages)
        _mark(session, sent, [m.message_id for m in messages[len(sent):]], error)
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
    """Relay each transaction's messages as soon as it commits (for every Session of this
    process). `workers/__init__.py` calls it when it sets up the app; calling it again
    changes nothing."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback)


@housekeeping("outbox.relay")
def relay_pending() -> int:
    """Send what the after-commit relay could not."""
    total = 0
    while sent := relay():
        total += sent
        if sent < BATCH:
            break
    if total:
        log.info("outbox relay: sent %d messages left behind", total)
    return total

