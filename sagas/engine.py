"""The orchestrator: every saga transition, each inside the caller's transaction.

The saga row is the state. Each function locks it, checks that the message it acts on
is about the current step and phase (a duplicate or late one is ignored), changes it,
and writes the next command to the outbox in the same commit.

A command carries the state its saga was saved with, so that a first delivery can skip
the lock: `finish_sent` acts on that state and saves only if the saga is still at its
version and the command was not taken before; else `finish_attempt` runs it, locked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from models import outbox
from models import saga as saga_log
from models.db import utcnow
from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    RUNNING,
    SagaState,
    SagaStep,
)
from sagas.definition import Refusal, Retry, SagaDefinition, Step
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
    # The saga's state as the command was sent with it (`models.saga.as_sent`).
    sent: dict[str, Any] | None = None

    @property
    def command_id(self) -> uuid.UUID | None:
        """The outbox message this delivers: a command's task id is its message id."""
        try:
            return uuid.UUID(self.task_id) if self.task_id else None
        except ValueError:  # sent by hand (`celery call`), not through the outbox
            return None


class CountFirst(Exception):
    """The saga has counted deliveries of this step already (a retry, or one that may
    have crashed): count this one on its own first, with `begin_attempt`."""


class Moved(Exception):
    """The saga is not as the command was sent (or the step could not finish on that
    state): roll back, and run the delivery again with the saga locked."""


class Refused(Exception):
    """The participant refused for a business reason (`code` names its error); its work
    rolls back with the transaction, then `refuse_attempt` records the refusal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def start(session: Session, definition: SagaDefinition, payload: dict[str, Any], *,
          started_by: int | None = None, idempotency_key: str | None = None,
          request_hash: str | None = None) -> SagaState:
    """Store a new saga and dispatch its first step when the transaction commits."""
    saga = SagaState(id=uuid.uuid4(), kind=definition.kind, payload=payload)
    _dispatch(saga, 0, ACTION)
    saga_log.create(session.connection(), saga, messages=_messages(session, saga),
                    definition_version=definition.version, started_by=started_by,
                    idempotency_key=idempotency_key, request_hash=request_hash)
    return saga


def begin_attempt(session: Session, delivery: Delivery) -> int | None:
    """Count a delivery of the step before running it, so that crashes count too.

    Returns the attempt's number; None when the message is stale or the step has used
    up its attempts (then the saga moves on: compensation, or failed).
    """
    with _waiting(session, delivery) as saga:
        return None if saga is None else _begin(session, delivery, saga)


def _begin(session: Session, delivery: Delivery, saga: SagaState) -> int | None:
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
    _log_attempt(saga, delivery, "running", started_at=now)
    return saga.attempt


def finish_attempt(session: Session, delivery: Delivery, action: Action) -> bool:
    """Run the participant's action and advance the saga, in one transaction; False
    when the saga does not wait for this step (then nothing ran).

    A business refusal raises Refused and any other error propagates: either way the
    transaction rolls back, and `refuse_attempt` or `fail_attempt` records what happened.
    """
    with _waiting(session, delivery) as saga:
        if saga is None:
            return False
        if delivery.attempt is None and saga.attempt:
            raise CountFirst(f"{delivery.step} {delivery.phase}: attempt {saga.attempt + 1}")
        _succeed(session, saga, delivery, action)
        return True


def finish_sent(session: Session, delivery: Delivery, action: Action) -> None:
    """`finish_attempt` for a first delivery, on the state its command carries, without
    locking the saga first: a round trip less for every step.

    The statement that saves the step saves it only if the saga is still at the version
    the command was sent with (every saved change makes a new version) and the command
    was not taken before (so no earlier delivery, and no state a database crash lost).
    Raises Moved when it did not save, or when the action raised: the caller rolls back
    and runs the delivery with `finish_attempt`, which decides under the lock.
    """
    try:
        saga = saga_log.from_sent(uuid.UUID(delivery.saga_id), delivery.sent or {})
    except (KeyError, TypeError, ValueError) as exc:  # none, or not the engine's
        raise Moved(f"no saga state in the command: {exc}") from exc
    if delivery.command_id is None or saga.attempt or not _waits_for(saga, delivery):
        raise Moved(f"{delivery.step} {delivery.phase}: not a first delivery as sent")
    sent = saga.version
    try:
        _succeed(session, saga, delivery, action)
    except Exception as exc:
        raise Moved(f"{delivery.step} {delivery.phase}: {exc}") from exc
    try:
        saved = _save(session, saga, wait_for_disk=saga.status not in IN_FLIGHT,
                      confirm=delivery.command_id, expected_version=sent)
    except IntegrityError as exc:  # the step's outcome was recorded before: a duplicate
        raise Moved(f"{delivery.step} {delivery.phase} answered before") from exc
    if not saved:
        raise Moved(f"saga {delivery.saga_id} moved on from version {sent}")


def _succeed(session: Session, saga: SagaState, delivery: Delivery, action: Action) -> None:
    """Run the action on the saga's data and advance the saga past the step."""
    definition = definition_of(saga.kind)
    try:
        reply = action(saga.payload) or {}
    except Exception as exc:
        if _is_refusal(definition.steps[saga.current_step], delivery.phase, exc):
            raise Refused(type(exc).__name__, str(exc)) from exc
        raise
    _counted(saga, delivery)
    _record(session, saga, delivery, "succeeded")
    saga.payload = {**saga.payload, **reply}
    _advance(session, definition, saga)


def refuse_attempt(session: Session, delivery: Delivery, refusal: Refused) -> bool:
    """Record a business refusal and turn the saga back; False when the saga no longer
    waits for this delivery (another one of the same step answered first)."""
    with _waiting(session, delivery) as saga:
        if saga is None or not _counted(saga, delivery):
            return False
        _record(session, saga, delivery, "refused", str(refusal))
        saga.error = f"{delivery.step} refused: {refusal.message}"
        saga.error_code = refusal.code
        _turn_back(session, definition_of(saga.kind), saga)
        return True


def fail_attempt(session: Session, delivery: Delivery, error: str) -> float | None:
    """Record a transient failure; seconds until the retry, or None when giving up."""
    with _waiting(session, delivery) as saga:
        if saga is None or not _counted(saga, delivery):
            return None
        return _fail(session, delivery, saga, error)


def _fail(session: Session, delivery: Delivery, saga: SagaState,
          error: str) -> float | None:
    definition = definition_of(saga.kind)
    _record(session, saga, delivery, "failed", error, supersede=False)
    if delivery.attempt is not None and delivery.attempt < saga.attempt:
        return None  # a newer delivery of this step is under way; it decides
    policy = _policy(definition, saga)
    if saga.attempt >= policy.attempts:
        _give_up(session, definition, saga, f"{delivery.step} {delivery.phase} failed "
                                            f"{saga.attempt} times, last: {error}")
        return None
    delay = policy.delay(saga.attempt)
    timeout = definition.steps[saga.current_step].timeout
    saga.deadline_at = utcnow() + timedelta(seconds=delay + timeout)
    saga.version += 1
    return delay


def sweep(session: Session) -> int:
    """Dispatch again the current step of every saga past its deadline."""
    overdue = saga_log.lock_overdue(session.connection(), SWEEP_BATCH)
    for saga in overdue:
        # Its step's earlier commands were lost, or are late: none is awaited any more.
        outbox.supersede(session.connection(), saga_of=str(saga.id))
        definition = definition_of(saga.kind)
        if saga.sweeps >= _policy(definition, saga).attempts:
            _give_up(session, definition, saga, f"step {saga.current_step} {saga.phase} "
                                                f"timed out {saga.sweeps} times")
        else:
            saga.sweeps += 1
            _send(definition, saga)
        _save(session, saga)
    return len(overdue)


@contextmanager
def _waiting(session: Session, delivery: Delivery) -> Iterator[SagaState | None]:
    """The locked saga, if this step and phase is what it waits for; what the block
    changes in it is saved when the block ends (an error leaves it to the rollback), and
    the delivery's command is confirmed taken, in the same statement."""
    saga = saga_log.lock(session.connection(), uuid.UUID(delivery.saga_id))
    if saga is None or not _waits_for(saga, delivery):
        if delivery.command_id:
            outbox.confirm(session.connection(), delivery.command_id)
        yield None
        return
    with _saved(session, saga, waits_in_flight=False, confirm=delivery.command_id):
        yield saga


def _waits_for(saga: SagaState, delivery: Delivery) -> bool:
    return saga.status in IN_FLIGHT and saga.phase == delivery.phase and (
        definition_of(saga.kind).steps[saga.current_step].name == delivery.step)


@contextmanager
def _saved(session: Session, saga: SagaState, *, waits_in_flight: bool = True,
           confirm: uuid.UUID | None = None) -> Iterator[SagaState]:
    """Save the saga's state when the block ends, if the block changed it, with the
    transaction's outbox messages and the confirmation of the command `confirm` names.

    A participant's commit that leaves its saga in flight need not wait for the disk; the
    commit that ends the saga does. PostgreSQL's log is one sequence, so that commit takes
    every earlier step's with it. A database crash may lose the last few steps' commits,
    each step's work with its saga state: the saga is back at an earlier step, commands
    sent for the lost steps find it not waiting for them, and the sweeper dispatches its
    step again. No answer is lost: a saga is reported ended only once that is on disk.
    """
    before = dict(vars(saga))  # shallow: the engine replaces a field's value, never edits it
    yield saga
    if vars(saga) != before:
        _save(session, saga, wait_for_disk=waits_in_flight or saga.status not in IN_FLIGHT,
              confirm=confirm, changed_from=before["version"])
    elif confirm:
        outbox.confirm(session.connection(), confirm)


def _save(session: Session, saga: SagaState, *, wait_for_disk: bool = True,
          confirm: uuid.UUID | None = None, expected_version: int | None = None,
          changed_from: int | None = None) -> bool:
    """Save the saga's state with the transaction's messages, among them the saga's command
    carrying that state; False when `expected_version` was not the saga's (nothing saved).

    Every saved change is a new version: a command's state is the saga's exactly while the
    saga is at the version the command was sent with."""
    if saga.version == changed_from:
        saga.version += 1
    return saga_log.save(session.connection(), saga, wait_for_disk=wait_for_disk,
                         messages=_messages(session, saga), confirm=confirm,
                         expected_version=expected_version)


def _messages(session: Session, saga: SagaState) -> list[outbox.Message]:
    """The transaction's messages, the saga's command last, carrying the state it is saved
    with (the state is final: it is being saved)."""
    if saga.command:
        step = definition_of(saga.kind).steps[saga.current_step]
        outbox.send_command(session, saga.command, saga_id=str(saga.id), step=step.name,
                            phase=saga.phase, sent=saga_log.as_sent(saga))
        saga.command = None
    return outbox.take_unwritten(session)


def _counted(saga: SagaState, delivery: Delivery) -> bool:
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
    return phase == ACTION and isinstance(exc, (*step.business_errors, Refusal))


def _policy(definition: SagaDefinition, saga: SagaState) -> Retry:
    step = definition.steps[saga.current_step]
    return step.retry if saga.phase == ACTION else step.compensation_retry


def _task_name(step: Step, phase: str) -> str:
    return step.action if phase == ACTION else step.compensation  # type: ignore[return-value]


def _of_current_step(saga: SagaState) -> tuple[ColumnElement[bool], ...]:
    return (SagaStep.saga_id == saga.id, SagaStep.step_index == saga.current_step,
            SagaStep.phase == saga.phase)


def _attempts(saga: SagaState) -> Update:
    return update(SagaStep).where(*_of_current_step(saga))


def _close_running(session: Session, saga: SagaState, status: str, error: str) -> None:
    session.connection().execute(_attempts(saga).where(SagaStep.status == "running")
                                 .values(status=status, error=error, ended_at=utcnow()))


def _log_attempt(saga: SagaState, delivery: Delivery, status: str, *, started_at: datetime,
                 ended_at: datetime | None = None, error: str | None = None) -> None:
    """Add the attempt to the step log, in the statement that saves the saga."""
    assert saga.new_attempt is None, "one new attempt per transaction"
    step = definition_of(saga.kind).steps[saga.current_step]
    saga.new_attempt = {
        "step": delivery.step, "step_index": saga.current_step, "phase": delivery.phase,
        "attempt": saga.attempt, "status": status, "task_id": delivery.task_id,
        "task_name": _task_name(step, delivery.phase), "error": error,
        "started_at": started_at, "ended_at": ended_at}


def _record(session: Session, saga: SagaState, delivery: Delivery, status: str,
            error: str | None = None, *, supersede: bool = True) -> None:
    """Write the attempt's outcome; with `supersede`, close the step's other attempts."""
    now = utcnow()
    if delivery.attempt is None:  # counted just now: its row is new
        _log_attempt(saga, delivery, status, error=error, started_at=delivery.started_at,
                     ended_at=now)
    else:
        # Attempt numbers start again when an operator retries the step: the newest row
        # with this number is this delivery's.
        row = select(func.max(SagaStep.id)).where(
            *_of_current_step(saga), SagaStep.attempt == delivery.attempt).scalar_subquery()
        session.connection().execute(update(SagaStep).where(SagaStep.id == row)
                                     .values(status=status, error=error, ended_at=now))
    if supersede and saga.attempt > 1:
        _close_running(session, saga, "superseded",
                       f"attempt {delivery.attempt or saga.attempt} answered first")


def _dispatch(saga: SagaState, index: int, phase: str) -> None:
    saga.current_step, saga.phase, saga.attempt, saga.sweeps = index, phase, 0, 0
    _send(definition_of(saga.kind), saga)


def _send(definition: SagaDefinition, saga: SagaState) -> None:
    step = definition.steps[saga.current_step]
    saga.deadline_at = utcnow() + timedelta(seconds=step.timeout)
    saga.version += 1
    saga.command = _task_name(step, saga.phase)  # sent when the state is saved: `_messages`


def _advance(session: Session, definition: SagaDefinition, saga: SagaState) -> None:
    if saga.phase == ACTION:
        if saga.current_step + 1 < len(definition.steps):
            _dispatch(saga, saga.current_step + 1, ACTION)
        else:
            _end(session, definition, saga, COMPLETED)
    else:
        _compensate_before(session, definition, saga, saga.current_step)


def _turn_back(session: Session, definition: SagaDefinition, saga: SagaState) -> None:
    """The current step did nothing; undo the steps before it, last first."""
    saga.status = COMPENSATING
    _compensate_before(session, definition, saga, saga.current_step)


def _compensate_before(session: Session, definition: SagaDefinition, saga: SagaState,
                       index: int) -> None:
    for earlier in range(index - 1, -1, -1):
        if definition.steps[earlier].compensation:
            _dispatch(saga, earlier, COMPENSATION)
            return
    _end(session, definition, saga, COMPENSATED)


def _give_up(session: Session, definition: SagaDefinition, saga: SagaState, error: str) -> None:
    _close_running(session, saga, "lost", "no answer before the saga gave up on the step")
    saga.error = error
    if saga.phase == ACTION:
        _turn_back(session, definition, saga)
    else:  # a compensation that cannot finish needs an operator
        _end(session, definition, saga, FAILED)


def _end(session: Session, definition: SagaDefinition, saga: SagaState, status: str) -> None:
    saga.status = status
    saga.deadline_at = None
    saga.ended_at = utcnow()
    saga.version += 1
    if status != COMPLETED and definition.if_not_completed and _changed_anything(saga):
        outbox.send_task(session, definition.if_not_completed, saga_id=str(saga.id),
                         data=saga.payload)


def _changed_anything(saga: SagaState) -> bool:
    """A step did its work: the saga got past its first step, or it compensated one."""
    return saga.current_step > 0 or saga.phase == COMPENSATION


class SagaStateError(Exception):
    """An operator's command that does not fit the saga's state."""


@contextmanager
def _operated(session: Session, saga_id: str, allowed: tuple[str, ...],
              command: str) -> Iterator[SagaState]:
    """The locked saga an operator's command acts on; saved when the command is done."""
    try:
        key = uuid.UUID(saga_id)
    except ValueError:
        raise SagaStateError(f"{saga_id!r} is not a saga id") from None
    # A step holds the saga's lock while it runs: wait a little for it, not forever.
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    try:
        saga = saga_log.lock(session.connection(), key)
    except OperationalError as exc:
        raise SagaStateError(f"saga {saga_id} is busy: one of its steps is running; "
                             "try again in a moment") from exc
    if saga is None:
        raise SagaStateError(f"no saga {saga_id}")
    if saga.status not in allowed:
        raise SagaStateError(f"saga {saga_id} is {saga.status}: {command} needs a saga that "
                             f"is {' or '.join(allowed)}")
    with _saved(session, saga):
        yield saga


def retry(session: Session, saga_id: str) -> SagaState:
    """Run a failed saga's stuck step again with a fresh budget; the saga goes on."""
    with _operated(session, saga_id, (FAILED,), "retry") as saga:
        saga.status = RUNNING if saga.phase == ACTION else COMPENSATING
        saga.ended_at = None
        _dispatch(saga, saga.current_step, saga.phase)
    return saga


def compensate(session: Session, saga_id: str) -> SagaState:
    """Undo a running (or failed, not yet compensating) saga's completed steps now."""
    with _operated(session, saga_id, (RUNNING, FAILED), "compensate") as saga:
        if saga.phase != ACTION:
            raise SagaStateError(f"saga {saga_id} was already compensating: use retry")
        _close_running(session, saga, "lost", "the operator compensated the saga")
        saga.error = saga.error or "compensated by an operator"
        saga.ended_at = None
        _turn_back(session, definition_of(saga.kind), saga)
    return saga


def abort(session: Session, saga_id: str) -> SagaState:
    """Stop a saga where it is, as failed: nothing more runs and nothing is undone."""
    with _operated(session, saga_id, IN_FLIGHT, "abort") as saga:
        _close_running(session, saga, "lost", "the operator aborted the saga")
        saga.error = "aborted by an operator" + (f" after: {saga.error}" if saga.error else "")
        _end(session, definition_of(saga.kind), saga, FAILED)
    return saga
