"""Retention: the saga log and the outbox must not grow without end.

Ended sagas (with their step logs and idempotency keys) and sent outbox messages older
than a cut-off are deleted in batches; sagas still in flight are never touched.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.db import utcnow
from models.outbox import OutboxMessage, ProcessedMessage
from models.saga import ACTION, COMPENSATION, IN_FLIGHT, Saga
from sagas.registry import definition_of

BATCH = 1000


def prune_sagas(session: Session, older_than: timedelta) -> int:
    """Delete one batch of sagas that ended before the cut-off; how many went."""
    ended = session.execute(
        select(Saga.id, Saga.kind).where(Saga.status.not_in(IN_FLIGHT),
                                         Saga.ended_at < utcnow() - older_than)
        .limit(BATCH).with_for_update(skip_locked=True)).all()
    if ended:
        # The steps' idempotency keys, found by their primary key rather than a scan.
        keys = [f"{saga_id}:{step.name}" for saga_id, kind in ended
                for step in definition_of(kind).steps]
        session.execute(delete(ProcessedMessage).where(
            ProcessedMessage.consumer.in_([f"saga:{ACTION}", f"saga:{COMPENSATION}"]),
            ProcessedMessage.key.in_(keys)))
        session.execute(delete(Saga).where(Saga.id.in_([saga_id for saga_id, _ in ended])))
    return len(ended)


def prune_outbox(session: Session, older_than: timedelta) -> int:
    """Delete one batch of messages sent before the cut-off; how many went."""
    sent = select(OutboxMessage.id).where(
        OutboxMessage.sent_at < utcnow() - older_than).limit(BATCH)
    ids = session.scalars(sent).all()
    if ids:
        session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    return len(ids)
