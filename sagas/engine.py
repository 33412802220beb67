"""The orchestrator: each delivery, sweep and operator's command is a transaction that locks
the saga, asks its rules (`sagas.machine`) what happens next, and saves the answer
(`sagas.store`) with whatever work the participant did. See docs/engine.md.

A delivery takes one path: lock the saga; if it waits for this step, run the participant
and save its answer in the same transaction. When the participant raises, its work rolls
back and a second transaction records the refusal or the failure. A delivery that may
follow a crash (the broker redelivered it, or the saga counted deliveries of the step
before) is counted in a transaction of its own before it runs, so that a step that keeps
killing its worker still uses up its attempts.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models import outbox
from models.db import session_factory, utcnow
from sagas import machine, store
from sagas.definition import SagaDefinition
from sagas.machine import (
    AbortOrdered,
    Admission,
    Answered,
    Begun,
    CompensationOrdered,
    Decision,
    Delivery,
    Event,
    Failed,
    Refused,
    RetryOrdered,
    SagaState,
    SagaStateError,
    TimedOut,
)
from sagas.registry import definition_of, registered

log = logging.getLogger(__name__)

# A participant's work: a function of its transaction and the saga's data; its reply (a
# dict, or None) merges into the data.
Work = Callable[[Session, dict[str, Any]], dict[str, Any] | None]
SWEEP_BATCH = 100

__all__ = ["Delivery", "SagaStateError", "StepFailed", "StepRefused", "Work", "abort",
           "compensate", "retry", "run_step", "start", "sweep"]


class StepRefused(Exception):
    """The step refused for a business reason; the saga is compensating."""


class StepFailed(Exception):
    """The step failed and gets no retry from this delivery."""


def start(session: Session, definition: SagaDefinition, payload: dict[str, Any],
          **columns: Any) -> SagaState:
    """Store a new saga, its first step dispatched when the transaction commits; `columns`:
    who started it (`started_by`), with which `idempotency_key` and `request_hash`."""
    decision = machine.start(definition, uuid.uuid4(), payload, utcnow())
    store.create(session, decision, **columns)
    return decision.saga


def run_step(task_name: str, work: Work, delivery: Delivery) -> float | None:
    """Run one delivery of a step; returns the seconds to wait before the step's next try,
    or None when it needs none.

    Raises StepRefused or StepFailed, after the saga has recorded it, so that the task
    shows as failed with a readable reason (in Flower, for one). An error of the engine's
    own (the database gone) propagates: the delivery changed nothing, and the sweeper
    dispatches the step again when its deadline passes.
    """
    while True:
        with session_factory()() as session:
            event, decision = _take(session, delivery, work)
            session.commit()
        if not isinstance(event, Begun):
            break
        delivery = replace(delivery, attempt=decision.saga.attempt)  # counted: now run it
    return _told(task_name, delivery, event, decision)


def _take(session: Session, delivery: Delivery,
          work: Work) -> tuple[Event | None, Decision | None]:
    """The delivery taken: run, its answer saved with its work; or counted, to run in a
    transaction of its own, so that the count survives its worker's death; or, when the
    saga does not wait for it, only confirmed. What happened, and the saga's answer."""
    command = _command_id(delivery)
    definition, saga = _locked(session, delivery.saga_id)
    admission = Admission.IGNORE if saga is None else machine.admit(definition, saga, delivery)
    if admission is Admission.IGNORE:
        store.save(session, None, confirm=command)
        return None, None
    event: Event
    if admission is Admission.COUNT_FIRST:
        event = Begun(delivery)
    else:
        try:
            event = Answered(delivery, work(session, saga.payload) or {})
        except Exception as exc:  # its work rolls back; the saga, locked again, records why
            session.rollback()
            definition, saga = _locked(session, delivery.saga_id)
            if saga is None:
                return None, None
            event = machine.failure(definition, saga, delivery, exc, random.random())
    return event, _decide(session, definition, saga, event, confirm=command)


def _told(task_name: str, delivery: Delivery, event: Event | None,
          decision: Decision | None) -> float | None:
    """Say how the delivery went, in the worker's log and to Celery."""
    attempt = delivery.attempt or 1
    if decision is None:
        log.info("%s: not waited for (duplicate, late or out of attempts); nothing done",
                 task_name)
    elif isinstance(event, Refused):
        log.info("%s attempt %d refused: %s: %s", task_name, attempt, event.code,
                 event.message)
        raise StepRefused(decision.saga.error)
    elif isinstance(event, Failed) and decision.retry_in is None:
        log.warning("%s attempt %d failed, no retry left: %s", task_name, attempt, event.error)
        raise StepFailed(f"{delivery.step} {delivery.phase} attempt {attempt}: {event.error}")
    elif isinstance(event, Failed):
        log.info("%s attempt %d failed, retry in %.2fs: %s", task_name, attempt,
                 decision.retry_in, event.error)
    else:
        log.info("%s attempt %d done", task_name, attempt)
    return None if decision is None else decision.retry_in


def sweep(session: Session) -> int:
    """Dispatch again the current step of every saga past its deadline, of those this
    deployment has the definitions of; the others are named in a warning."""
    versions = [(definition.kind, definition.version) for definition in registered()]
    for kind, version, count in store.overdue_elsewhere(session.connection(), versions):
        log.warning("%d %s sagas are overdue on definition %s, which this deployment does "
                    "not have: they wait for one that does (celery -A workers saga check)",
                    count, kind, version)
    overdue = store.lock_overdue(session.connection(), SWEEP_BATCH, versions)
    for saga in overdue:
        # Its step's earlier commands were lost, or are late: none is awaited any more.
        outbox.supersede(session.connection(), saga_of=str(saga.id))
        _decide(session, _definition(saga), saga, TimedOut())
    return len(overdue)


def retry(session: Session, saga_id: str) -> SagaState:
    """Run a failed saga's stuck step again with a fresh budget; the saga goes on."""
    return _operate(session, saga_id, RetryOrdered())


def compensate(session: Session, saga_id: str) -> SagaState:
    """Undo a running (or failed, not yet compensating) saga's completed steps now."""
    return _operate(session, saga_id, CompensationOrdered())


def abort(session: Session, saga_id: str) -> SagaState:
    """Stop a saga where it is, as failed: nothing more runs and nothing is undone."""
    return _operate(session, saga_id, AbortOrdered())


def _operate(session: Session, saga_id: str, order: Event) -> SagaState:
    """An operator's command on the saga, locked; SagaStateError when it does not fit."""
    try:
        key = uuid.UUID(saga_id)
    except ValueError:
        raise SagaStateError(f"{saga_id!r} is not a saga id") from None
    # A step holds the saga's lock while it runs: wait a little for it, not forever.
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    try:
        definition, saga = _locked(session, str(key))
    except OperationalError as exc:
        raise SagaStateError(f"saga {saga_id} is busy: one of its steps is running; "
                             "try again in a moment") from exc
    if saga is None:
        raise SagaStateError(f"no saga {saga_id}")
    return _decide(session, definition, saga, order).saga


def _locked(session: Session,
            saga_id: str) -> tuple[SagaDefinition, SagaState] | tuple[None, None]:
    """The saga, locked until the transaction ends, with the definition it runs on."""
    saga = store.lock(session.connection(), uuid.UUID(saga_id))
    return (None, None) if saga is None else (_definition(saga), saga)


def _definition(saga: SagaState) -> SagaDefinition:
    return definition_of(saga.kind, saga.definition_version)


def _decide(session: Session, definition: SagaDefinition, saga: SagaState, event: Event, *,
            confirm: uuid.UUID | None = None) -> Decision | None:
    """Ask the state machine, and save its answer."""
    decision = machine.decide(definition, saga, event, utcnow())
    store.save(session, decision, before=saga, confirm=confirm)
    return decision


def _command_id(delivery: Delivery) -> uuid.UUID | None:
    """The outbox message a delivery takes: a command's task id is its message id."""
    try:
        return uuid.UUID(delivery.task_id) if delivery.task_id else None
    except ValueError:  # sent by hand (`celery call`), not through the outbox
        return None
