"""The outbox relay: sends committed messages to the broker and marks them sent.

Right after a commit it sends that transaction's messages; celery beat runs `outbox.relay`
every few seconds for whatever was left behind (broker down, process killed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from kombu import Connection
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from models.db import unit_of_work, utcnow
from models.outbox import PENDING_KEY, OutboxMessage
from petstore.settings import get_settings
from workers.bus import subscribers
from workers.celery_app import app

log = logging.getLogger(__name__)
BATCH = 200
BROKER_ERRORS = (KombuError, RedisError, OSError)


def _deliveries(message: OutboxMessage) -> list[tuple[str, dict, str]]:
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


def relay(ids: Sequence[int] | None = None) -> int:
    """Send pending messages (these ids only, if given); returns how many went out.

    Rows are locked with SKIP LOCKED, so concurrent relays never send one message twice;
    a crash between sending and marking sends it again, with the same task id.
    """
    with unit_of_work() as session:
        query = (select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                 .order_by(OutboxMessage.id).limit(BATCH).with_for_update(skip_locked=True))
        if ids is not None:
            query = query.where(OutboxMessage.id.in_(ids))
        messages = session.scalars(query).all()
        if not messages:
            return 0
        sent = 0
        copies = 2 if get_settings().duplicate_deliveries else 1
        for message in messages:
            try:
                with broker() as connection:
                    for name, kwargs, task_id in _deliveries(message) * copies:
                        app.send_task(name, kwargs=kwargs, task_id=task_id, retry=False,
                                      connection=connection)
            except BROKER_ERRORS as exc:
                message.attempts += 1
                message.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("outbox relay: broker unavailable, %s left pending: %s",
                            message.message_id, exc)
                break
            message.sent_at = utcnow()
            sent += 1
        return sent


def _after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if pending:
        try:
            relay([message.id for message in pending])
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
