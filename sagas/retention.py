"""Retention: the saga log and the outbox must not grow without end.

Ended sagas (with their step logs, which hold their idempotency keys) and sent outbox
messages older than a cut-off are deleted in batches; sagas in flight are never touched.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.db import utcnow
from models.outbox import OutboxMessage
from models.saga import IN_FLIGHT, Saga

BATCH = 1000


def prune_sagas(session: Session, older_than: timedelta) -> int:
    """Delete one batch of sagas that ended before the cut-off; how many went."""
    ended = session.scalars(
        select(Saga.id).where(Saga.status.not_in(IN_FLIGHT),
                              Saga.ended_at < utcnow() - older_than)
        .limit(BATCH).with_for_update(skip_locked=True)).all()
    if ended:  # their step logs go with them (ON DELETE CASCADE)
        session.execute(delete(Saga).where(Saga.id.in_(ended)))
    return len(ended)


def prune_outbox(session: Session, older_than: timedelta) -> int:
    """Delete one batch of messages sent before the cut-off; how many went."""
    sent = select(OutboxMessage.id).where(
        OutboxMessage.sent_at < utcnow() - older_than).limit(BATCH)
    ids = session.scalars(sent).all()
    if ids:
        session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    return len(ids)
