"""The orchestrator: every saga transition, each inside the caller's transaction.

The saga row is the state. Each function locks it, checks that the message it acts on
is about the current step and phase (a duplicate or late one is ignored), changes it,
and writes the next command to the outbox in the same commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from models.db import utcnow
from models.outbox import send_task
from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    RUNNING,
    Saga,
    SagaStep,
)
from petstore.settings import get_settings
from sagas.definition import Retry, SagaDefinition, Step
from sagas.faults import InjectedFailure
from sagas.registry import definition_of

Action = Callable[[dict[str, Any]], dict[str, Any] | None]
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Delivery:
    """One delivery of a step's command to its participant."""

    saga_id: str
    step: str
    phase: str
    task_id: str | None = None
    # Its number once counted on its own (`begin_attempt`); None for a first delivery,
    # which is counted in the transaction that does its work: one transaction, not two.
    attempt: int | None = None
    started_at: datetime = field(default_factory=utcnow)


class CountFirst(Exception):
    """The saga has counted deliveries of this step already (a retry, or one that may
    have crashed): count this one on its own first, with `begin_attempt`."""


class Refused(Exception):
    """The participant refused for a business reason (`code` names its error); its work
    rolls back with the transaction, then `refuse_attempt` records the refusal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def start(session: Session, definition: SagaDefinition, payload: dict[str, Any], *,
          started_by: int | None = None, idempotency_key: str | None = None,
          request_hash: str | None = None) -> Saga:
    """Store a new saga and dispatch its first step when the transaction commits."""
    saga = Saga(id=uuid.uuid4(), kind=definition.kind, payload=payload, started_by=started_by,
                idempotency_key=idempotency_key, request_hash=request_hash, version=0)
    session.add(saga)
    _dispatch(session, saga, 0, ACTION)
    return saga


def begin_attempt(session: Session, delivery: Delivery) -> int | None:
    """Count a delivery of the step before running it, so that crashes count too.

    Returns the attempt's number; None when the message is stale or the step has used
    up its attempts (then the saga moves on: compensation, or failed).
    """
    # Losing this record in a crash costs one uncounted attempt, never an effect: it
    # need not wait for the disk.
    session.execute(text("SET LOCAL synchronous_commit = off"))
    saga = _current(session, delivery)
    if saga is None:
        return None
    definition = definition_of(saga.kind)
    _close_running(session, saga, "lost", "the worker stopped before answering")
    if saga.attempt >= _policy(definition, saga).attempts:
        _give_up(session, definition, saga, f"{delivery.step} {delivery.phase}: no answer "
                                            f"after {saga.attempt} attempts")
        return None
    now = utcnow()
    saga.attempt += 1
    saga.deadline_at = now + timedelta(seconds=definition.steps[saga.current_step].timeout)
    saga.version += 1
    session.add(_attempt_row(saga, delivery, "running", started_at=now))
    return saga.attempt


def finish_attempt(session: Session, delivery: Delivery, action: Action) -> bool:
    """Run the participant's action and advance the saga, in one transaction; False
    when the saga does not wait for this step (then nothing ran).

    A business refusal raises Refused and any other error propagates: either way the
    transaction rolls back, and `refuse_attempt` or `fail_attempt` records what happened.
    """
    saga = _current(session, delivery)
    if saga is None:
        return False
    if delivery.attempt is None and saga.attempt:
        raise CountFirst(f"{delivery.step} {delivery.phase}: attempt {saga.attempt + 1}")
    definition = definition_of(saga.kind)
    try:
        reply = action(saga.payload) or {}
    except Exception as exc:
        if _is_refusal(definition.steps[saga.current_step], delivery.phase, exc):
            raise Refused(type(exc).__name__, str(exc)) from exc
        raise
    _counted(saga, delivery)  # after the action: its statements need not flush the saga
    _record(session, saga, delivery, "succeeded")
    saga.payload = {**saga.payload, **reply}
    _advance(session, definition, saga)
    return True


def refuse_attempt(session: Session, delivery: Delivery, refusal: Refused) -> bool:
    """Record a business refusal and turn the saga back; False when the saga no longer
    waits for this delivery (another one of the same step answered first)."""
    saga = _current(session, delivery)
    if saga is None or not _counted(saga, delivery):
        return False
    _record(session, saga, delivery, "refused", str(refusal))
    saga.error = f"{delivery.step} refused: {refusal.message}"
    saga.error_code = refusal.code
    _turn_back(session, definition_of(saga.kind), saga)
    return True


def fail_attempt(session: Session, delivery: Delivery, error: str) -> float | None:
    """Record a transient failure; seconds until the retry, or None when giving up."""
    saga = _current(session, delivery)
    if saga is None or not _counted(saga, delivery):
        return None
    definition = definition_of(saga.kind)
    _record(session, saga, delivery, "failed", error, supersede=False)
    if delivery.attempt is not None and delivery.attempt < saga.attempt:
        return None  # a newer delivery of this step is under way; it decides
    policy = _policy(definition, saga)
    if saga.attempt >= policy.attempts:
        _give_up(session, definition, saga, f"{delivery.step} {delivery.phase} failed "
                                            f"{saga.attempt} times, last: {error}")
        return None
    delay = policy.delay(saga.attempt) * get_settings().retry_scale
    timeout = definition.steps[saga.current_step].timeout
    saga.deadline_at = utcnow() + timedelta(seconds=delay + timeout)
    saga.version += 1
    return delay


def sweep(session: Session) -> int:
    """Dispatch again the current step of every saga past its deadline."""
    overdue = session.scalars(
        select(Saga).where(Saga.status.in_(IN_FLIGHT), Saga.deadline_at < utcnow())
        .order_by(Saga.deadline_at).limit(SWEEP_BATCH).with_for_update(skip_locked=True)
    ).all()
    for saga in overdue:
        definition = definition_of(saga.kind)
        if saga.sweeps >= _policy(definition, saga).attempts:
            _give_up(session, definition, saga, f"step {saga.current_step} {saga.phase} "
                                                f"timed out {saga.sweeps} times")
        else:
            saga.sweeps += 1
            _send(session, definition, saga)
    return len(overdue)


def _current(session: Session, delivery: Delivery) -> Saga | None:
    """The locked saga, if this step and phase is what it waits for."""
    saga = session.get(Saga, uuid.UUID(delivery.saga_id), with_for_update=True,
                       populate_existing=True)
    if saga is None or saga.status not in IN_FLIGHT or saga.phase != delivery.phase:
        return None
    steps = definition_of(saga.kind).steps
    return saga if steps[saga.current_step].name == delivery.step else None


def _counted(saga: Saga, delivery: Delivery) -> bool:
    """Count a first delivery whose count rolled back with its work; False when another
    delivery of the step was counted meanwhile (that one decides)."""
    if delivery.attempt is not None:
        return True
    if saga.attempt:
        return False
    saga.attempt = 1
    return True


def _is_refusal(step: Step, phase: str, exc: Exception) -> bool:
    """Only an action refuses; a compensation must succeed, so its errors are retried."""
    return phase == ACTION and (type(exc).__name__ in step.business_errors
                                or isinstance(exc, InjectedFailure))


def _policy(definition: SagaDefinition, saga: Saga) -> Retry:
    step = definition.steps[saga.current_step]
    return step.retry if saga.phase == ACTION else step.compensation_retry


def _task_name(step: Step, phase: str) -> str:
    return step.action if phase == ACTION else step.compensation  # type: ignore[return-value]


def _of_current_step(saga: Saga) -> tuple[ColumnElement[bool], ...]:
    return (SagaStep.saga_id == saga.id, SagaStep.step_index == saga.current_step,
            SagaStep.phase == saga.phase)


def _attempts(saga: Saga) -> Update:
    return update(SagaStep).where(*_of_current_step(saga))


def _close_running(session: Session, saga: Saga, status: str, error: str) -> None:
    session.execute(_attempts(saga).where(SagaStep.status == "running")
                    .values(status=status, error=error, ended_at=utcnow()))


def _attempt_row(saga: Saga, delivery: Delivery, status: str, **fields: Any) -> SagaStep:
    step = definition_of(saga.kind).steps[saga.current_step]
    return SagaStep(saga_id=saga.id, step=delivery.step, step_index=saga.current_step,
                    phase=delivery.phase, attempt=saga.attempt, status=status,
                    task_id=delivery.task_id, task_name=_task_name(step, delivery.phase),
                    **fields)


def _record(session: Session, saga: Saga, delivery: Delivery, status: str,
            error: str | None = None, *, supersede: bool = True) -> None:
    """Write the attempt's outcome; with `supersede`, close the step's other attempts."""
    now = utcnow()
    if delivery.attempt is None:  # counted just now: its row is new
        session.add(_attempt_row(saga, delivery, status, error=error,
                                 started_at=delivery.started_at, ended_at=now))
    else:
        # Attempt numbers start again when an operator retries the step: the newest row
        # with this number is this delivery's.
        row = select(func.max(SagaStep.id)).where(
            *_of_current_step(saga), SagaStep.attempt == delivery.attempt).scalar_subquery()
        session.execute(update(SagaStep).where(SagaStep.id == row)
                        .values(status=status, error=error, ended_at=now))
    if supersede and saga.attempt > 1:
        _close_running(session, saga, "superseded",
                       f"attempt {delivery.attempt or saga.attempt} answered first")


def _dispatch(session: Session, saga: Saga, index: int, phase: str) -> None:
    saga.current_step, saga.phase, saga.attempt, saga.sweeps = index, phase, 0, 0
    _send(session, definition_of(saga.kind), saga)


def _send(session: Session, definition: SagaDefinition, saga: Saga) -> None:
    step = definition.steps[saga.current_step]
    saga.deadline_at = utcnow() + timedelta(seconds=step.timeout)
    saga.version += 1
    send_task(session, _task_name(step, saga.phase), saga_id=str(saga.id), step=step.name,
              phase=saga.phase)


def _advance(session: Session, definition: SagaDefinition, saga: Saga) -> None:
    if saga.phase == ACTION:
        if saga.current_step + 1 < len(definition.steps):
            _dispatch(session, saga, saga.current_step + 1, ACTION)
        else:
            _end(session, definition, saga, COMPLETED)
    else:
        _compensate_before(session, definition, saga, saga.current_step)


def _turn_back(session: Session, definition: SagaDefinition, saga: Saga) -> None:
    """The current step did nothing; undo the steps before it, last first."""
    saga.status = COMPENSATING
    _compensate_before(session, definition, saga, saga.current_step)


def _compensate_before(session: Session, definition: SagaDefinition, saga: Saga,
                       index: int) -> None:
    for earlier in range(index - 1, -1, -1):
        if definition.steps[earlier].compensation:
            _dispatch(session, saga, earlier, COMPENSATION)
            return
    _end(session, definition, saga, COMPENSATED)


def _give_up(session: Session, definition: SagaDefinition, saga: Saga, error: str) -> None:
    _close_running(session, saga, "lost", "no answer before the saga gave up on the step")
    saga.error = error
    if saga.phase == ACTION:
        _turn_back(session, definition, saga)
    else:  # a compensation that cannot finish needs an operator
        _end(session, definition, saga, FAILED)


def _end(session: Session, definition: SagaDefinition, saga: Saga, status: str) -> None:
    saga.status = status
    saga.deadline_at = None
    saga.ended_at = utcnow()
    saga.version += 1
    if status != COMPLETED and definition.if_not_completed and _changed_anything(saga):
        send_task(session, definition.if_not_completed, saga_id=str(saga.id), data=saga.payload)


def _changed_anything(saga: Saga) -> bool:
    """A step did its work: the saga got past its first step, or it compensated one."""
    return saga.current_step > 0 or saga.phase == COMPENSATION


class SagaStateError(Exception):
    """An operator's command that does not fit the saga's state."""


def _operated(session: Session, saga_id: str, allowed: tuple[str, ...], command: str) -> Saga:
    try:
        key = uuid.UUID(saga_id)
    except ValueError:
        raise SagaStateError(f"{saga_id!r} is not a saga id") from None
    # A step holds the saga's lock while it runs: wait a little for it, not forever.
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    try:
        saga = session.get(Saga, key, with_for_update=True, populate_existing=True)
    except OperationalError as exc:
        raise SagaStateError(f"saga {saga_id} is busy: one of its steps is running; "
                             "try again in a moment") from exc
    if saga is None:
        raise SagaStateError(f"no saga {saga_id}")
    if saga.status not in allowed:
        raise SagaStateError(f"saga {saga_id} is {saga.status}: {command} needs a saga that "
                             f"is {' or '.join(allowed)}")
    return saga


def retry(session: Session, saga_id: str) -> Saga:
    """Run a failed saga's stuck step again with a fresh budget; the saga goes on."""
    saga = _operated(session, saga_id, (FAILED,), "retry")
    saga.status = RUNNING if saga.phase == ACTION else COMPENSATING
    saga.ended_at = None
    _dispatch(session, saga, saga.current_step, saga.phase)
    return saga


def compensate(session: Session, saga_id: str) -> Saga:
    """Undo a running (or failed, not yet compensating) saga's completed steps now."""
    saga = _operated(session, saga_id, (RUNNING, FAILED), "compensate")
    if saga.phase != ACTION:
        raise SagaStateError(f"saga {saga_id} was already compensating: use retry")
    _close_running(session, saga, "lost", "the operator compensated the saga")
    saga.error = saga.error or "compensated by an operator"
    saga.ended_at = None
    _turn_back(session, definition_of(saga.kind), saga)
    return saga


def abort(session: Session, saga_id: str) -> Saga:
    """Stop a saga where it is, as failed: nothing more runs and nothing is undone."""
    saga = _operated(session, saga_id, IN_FLIGHT, "abort")
    _close_running(session, saga, "lost", "the operator aborted the saga")
    saga.error = "aborted by an operator" + (f" after: {saga.error}" if saga.error else "")
    _end(session, definition_of(saga.kind), saga, FAILED)
    return saga
