"""A saga's rules: what happens next, as a function of its state and what just happened.

`decide(definition, saga, event, now)` answers with the saga's next state and what to
write and send with it. It reads no database, no broker and no clock: the caller locks the
saga, asks, and saves the answer with the participant's work in one transaction
(`sagas.engine`). See docs/engine.md for the states, the transitions and why a delivery
that comes twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from models.saga import (
    ACTION,
    COMPENSATED,
    COMPENSATING,
    COMPENSATION,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    REFUSED,
    RUNNING,
)
from sagas.definition import Refusal, Retry, SagaDefinition, Step


@dataclass(frozen=True)
class SagaState:
    """A saga's state: its row in `sagas`, less what only reports read."""

    id: uuid.UUID
    kind: str
    # The version of the definition it started on (and runs on); None: from before versions.
    definition_version: str | None
    status: str = RUNNING
    payload: dict[str, Any] = field(default_factory=dict)
    current_step: int = 0
    phase: str = ACTION
    # Deliveries counted of the current step and phase; the retry policy caps them.
    attempt: int = 0
    # Times the sweeper dispatched the current step again; the retry policy caps them too.
    sweeps: int = 0
    error: str | None = None
    # The name of the refusal that turned the saga back, for callers to act on.
    error_code: str | None = None
    # Past it without an answer, the sweeper dispatches the current step again.
    deadline_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """One delivery of a step's command to its participant."""

    saga_id: str
    step: str
    phase: str
    task_id: str | None = None
    # Its number once counted on its own (`Begun`); None for a first delivery, which is
    # counted in the transaction that does its work.
    attempt: int | None = None
    started_at: datetime | None = None
    # The broker delivered it before, to a worker that may have died running it.
    redelivered: bool = False
    # The worker host running it (Celery's hostname), for the step log: where it ran.
    worker: str | None = None


# What happened: a participant's answer to a delivery, the sweeper's or an operator's move.

@dataclass(frozen=True)
class Begun:
    """A delivery that may follow a crash, counted before it runs, so that crashes count."""

    delivery: Delivery


@dataclass(frozen=True)
class Answered:
    delivery: Delivery
    reply: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    """The participant refused for a business reason: `code` names the refusal."""

    delivery: Delivery
    code: str
    message: str


@dataclass(frozen=True)
class Failed:
    """A transient failure; `jitter` (0 to 1) places the retry's wait in its window."""

    delivery: Delivery
    error: str
    jitter: float = 0.5


@dataclass(frozen=True)
class TimedOut:
    """The sweeper found the saga past its deadline."""


@dataclass(frozen=True)
class RetryOrdered:
    """An operator: run a failed saga's stuck step again with a fresh budget."""


@dataclass(frozen=True)
class CompensationOrdered:
    """An operator: undo the steps a running or failed saga has done, now."""


@dataclass(frozen=True)
class AbortOrdered:
    """An operator: stop the saga where it is, as failed, undoing nothing."""


Event = (Begun | Answered | Refused | Failed | TimedOut | RetryOrdered | CompensationOrdered
         | AbortOrdered)


# What to write and send with the new state.

@dataclass(frozen=True)
class Command:
    """The current step's task, sent with the saga's id, step and phase."""

    task: str
    step: str
    phase: str


@dataclass(frozen=True)
class FollowUp:
    """The definition's `if_not_completed` task, sent with the saga's id and data."""

    task: str


@dataclass(frozen=True)
class Attempt:
    """A new entry in the step log."""

    step: str
    step_index: int
    phase: str
    attempt: int
    status: str
    task_name: str
    task_id: str | None
    started_at: datetime | None
    ended_at: datetime | None = None
    error: str | None = None
    worker: str | None = None  # the delivery's host; a counted entry's Outcome is its too


@dataclass(frozen=True)
class Outcome:
    """How an attempt counted earlier (its entry says `running`) ended."""

    step_index: int
    phase: str
    attempt: int
    status: str
    ended_at: datetime
    error: str | None = None


@dataclass(frozen=True)
class Closed:
    """The step's attempts still `running` are over: lost, or superseded by another."""

    step_index: int
    phase: str
    status: str
    error: str
    ended_at: datetime


Effect = Command | FollowUp | Attempt | Outcome | Closed


@dataclass(frozen=True)
class Decision:
    saga: SagaState
    effects: tuple[Effect, ...] = ()
    # After a transient failure: seconds until the step's next try; None, no retry.
    retry_in: float | None = None

    def then(self, saga: SagaState, *effects: Effect) -> Decision:
        return replace(self, saga=saga, effects=(*self.effects, *effects))


class Admission(Enum):
    RUN = "run"  # run the participant; its answer decides
    COUNT_FIRST = "count first"  # count the delivery on its own (`Begun`), then run it
    IGNORE = "ignore"  # a duplicate, late or stale delivery: nothing runs


class SagaStateError(Exception):
    """An operator's command that does not fit the saga's state."""


def start(definition: SagaDefinition, saga_id: uuid.UUID, payload: dict[str, Any],
          now: datetime) -> Decision:
    """A new saga, its first step dispatched."""
    saga = SagaState(id=saga_id, kind=definition.kind, definition_version=definition.version,
                     payload=payload)
    return _dispatch(definition, Decision(saga), 0, ACTION, now)


def waits_for(definition: SagaDefinition, saga: SagaState, delivery: Delivery) -> bool:
    """Whether this step and phase is what the saga waits for now."""
    return saga.status in IN_FLIGHT and saga.phase == delivery.phase and (
        definition.steps[saga.current_step].name == delivery.step)


def admit(definition: SagaDefinition, saga: SagaState, delivery: Delivery) -> Admission:
    """Whether a delivery runs: a first delivery of a step runs at once, counted with its
    answer; one that may follow a crash (redelivered, or after others were counted) is
    counted on its own first, so that a step that keeps killing its worker runs out."""
    if not waits_for(definition, saga, delivery):
        return Admission.IGNORE
    if delivery.attempt is None and (saga.attempt or delivery.redelivered):
        return Admission.COUNT_FIRST
    return Admission.RUN


def failure(definition: SagaDefinition, saga: SagaState, delivery: Delivery,
            error: Exception, jitter: float) -> Refused | Failed:
    """What a participant's error means: a refusal when its step declares it (or it is a
    `Refusal`) and the step was acting; a compensation must succeed, so its errors, like
    any other, are transient failures, retried."""
    step = definition.steps[saga.current_step]
    if saga.phase == ACTION and isinstance(error, (*step.business_errors, Refusal)):
        return Refused(delivery, type(error).__name__, str(error))
    return Failed(delivery, f"{type(error).__name__}: {error}"[:1000], jitter)


def decide(definition: SagaDefinition, saga: SagaState, event: Event,
           now: datetime) -> Decision | None:
    """The saga's next state and effects; None when the event changes nothing (a delivery
    the saga no longer waits for). Raises SagaStateError for an operator's command that
    does not fit the saga's state."""
    match event:
        case Begun(delivery) | Answered(delivery) | Refused(delivery) | Failed(delivery):
            if not waits_for(definition, saga, delivery):
                return None
            if isinstance(event, Begun):
                return _begin(definition, saga, delivery, now)
            if delivery.attempt is None and saga.attempt:
                return None  # another delivery was counted meanwhile: that one decides
            if delivery.attempt is None:
                saga = replace(saga, attempt=1)  # counted with its answer
            return _answer(definition, saga, event, now)
        case TimedOut():
            return _timed_out(definition, saga, now) if saga.status in IN_FLIGHT else None
        case RetryOrdered():
            return _retry(definition, saga, now)
        case CompensationOrdered():
            return _compensate(definition, saga, now)
        case AbortOrdered():
            return _abort(definition, saga, now)
    raise TypeError(f"not a saga event: {event!r}")


def _answer(definition: SagaDefinition, saga: SagaState, event: Answered | Refused | Failed,
            now: datetime) -> Decision:
    match event:
        case Answered(delivery, reply):
            decision = _logged(definition, saga, delivery, "succeeded", now)
            decision = _superseding(decision, delivery, now)
            decision = decision.then(replace(saga, payload={**saga.payload, **reply}))
            return _advance(definition, decision, now)
        case Refused(delivery, code, message):
            decision = _logged(definition, saga, delivery, "refused", now,
                               error=f"{code}: {message}")
            decision = _superseding(decision, delivery, now)
            decision = decision.then(replace(saga, error=f"{delivery.step} refused: {message}",
                                             error_code=code))
            if saga.current_step == 0:  # refused before any step did work: nothing to undo
                return _end(definition, decision, REFUSED, now)
            return _turn_back(definition, decision, now)
        case Failed(delivery, error, jitter):
            return _fail(definition, saga, delivery, error, jitter, now)


def _begin(definition: SagaDefinition, saga: SagaState, delivery: Delivery,
           now: datetime) -> Decision:
    if saga.attempt >= policy(definition, saga).attempts:
        return _give_up(definition, Decision(saga), f"{delivery.step} {delivery.phase}: no "
                                                    f"answer after {saga.attempt} attempts", now)
    decision = Decision(saga, (_closed(saga, "lost", "the worker stopped before answering",
                                       now),))
    step = definition.steps[saga.current_step]
    saga = replace(saga, attempt=saga.attempt + 1,
                   deadline_at=now + timedelta(seconds=step.timeout))
    return decision.then(saga, _attempt(definition, saga, delivery, "running", started_at=now))


def _fail(definition: SagaDefinition, saga: SagaState, delivery: Delivery, error: str,
          jitter: float, now: datetime) -> Decision:
    decision = _logged(definition, saga, delivery, "failed", now, error=error)
    if delivery.attempt is not None and delivery.attempt < saga.attempt:
        return decision  # a newer delivery of this step is under way; it decides
    retry = policy(definition, saga)
    if saga.attempt >= retry.attempts:
        return _give_up(definition, decision, f"{delivery.step} {delivery.phase} failed "
                                              f"{saga.attempt} times, last: {error}", now)
    delay = retry.delay(saga.attempt, jitter)
    timeout = definition.steps[saga.current_step].timeout
    return replace(decision.then(replace(saga, deadline_at=now + timedelta(
        seconds=delay + timeout))), retry_in=delay)


def _timed_out(definition: SagaDefinition, saga: SagaState, now: datetime) -> Decision:
    decision = Decision(saga)
    if saga.sweeps >= policy(definition, saga).attempts:
        step = definition.steps[saga.current_step]
        return _give_up(definition, decision, f"{step.name} {saga.phase} timed out "
                                              f"{saga.sweeps} times", now)
    return _send(definition, decision.then(replace(saga, sweeps=saga.sweeps + 1)), now)


def _retry(definition: SagaDefinition, saga: SagaState, now: datetime) -> Decision:
    _require(saga, (FAILED,), "retry")
    if saga.phase == ACTION:  # it goes on as if it had never stopped
        saga = replace(saga, status=RUNNING, error=None, error_code=None)
    else:  # it still undoes its steps for the reason it turned back
        saga = replace(saga, status=COMPENSATING)
    saga = replace(saga, ended_at=None)
    return _dispatch(definition, Decision(saga), saga.current_step, saga.phase, now)


def _compensate(definition: SagaDefinition, saga: SagaState, now: datetime) -> Decision:
    _require(saga, (RUNNING, FAILED), "compensate")
    if saga.phase != ACTION:
        raise SagaStateError(f"saga {saga.id} was already compensating: use retry")
    decision = Decision(
        replace(saga, error=saga.error or "compensated by an operator", ended_at=None),
        (_closed(saga, "lost", "the operator compensated the saga", now),))
    return _turn_back(definition, decision, now)


def _abort(definition: SagaDefinition, saga: SagaState, now: datetime) -> Decision:
    _require(saga, IN_FLIGHT, "abort")
    error = "aborted by an operator" + (f" after: {saga.error}" if saga.error else "")
    decision = Decision(replace(saga, error=error),
                        (_closed(saga, "lost", "the operator aborted the saga", now),))
    return _end(definition, decision, FAILED, now)


def _require(saga: SagaState, allowed: tuple[str, ...], command: str) -> None:
    if saga.status not in allowed:
        raise SagaStateError(f"saga {saga.id} is {saga.status}: {command} needs a saga that "
                             f"is {' or '.join(allowed)}")


def _dispatch(definition: SagaDefinition, decision: Decision, index: int, phase: str,
              now: datetime) -> Decision:
    saga = replace(decision.saga, current_step=index, phase=phase, attempt=0, sweeps=0)
    return _send(definition, decision.then(saga), now)


def _send(definition: SagaDefinition, decision: Decision, now: datetime) -> Decision:
    """The current step's command, with a new deadline for its answer."""
    saga = decision.saga
    step = definition.steps[saga.current_step]
    return decision.then(replace(saga, deadline_at=now + timedelta(seconds=step.timeout)),
                         Command(task_name(step, saga.phase), step.name, saga.phase))


def _advance(definition: SagaDefinition, decision: Decision, now: datetime) -> Decision:
    saga = decision.saga
    if saga.phase == COMPENSATION:
        return _compensate_before(definition, decision, saga.current_step, now)
    if saga.current_step + 1 < len(definition.steps):
        return _dispatch(definition, decision, saga.current_step + 1, ACTION, now)
    return _end(definition, decision, COMPLETED, now)


def _turn_back(definition: SagaDefinition, decision: Decision, now: datetime) -> Decision:
    """The current step did nothing; undo the steps before it, last first."""
    decision = decision.then(replace(decision.saga, status=COMPENSATING))
    return _compensate_before(definition, decision, decision.saga.current_step, now)


def _compensate_before(definition: SagaDefinition, decision: Decision, index: int,
                       now: datetime) -> Decision:
    for earlier in range(index - 1, -1, -1):
        if definition.steps[earlier].compensation:
            return _dispatch(definition, decision, earlier, COMPENSATION, now)
    return _end(definition, decision, COMPENSATED, now)


def _give_up(definition: SagaDefinition, decision: Decision, error: str,
             now: datetime) -> Decision:
    saga = decision.saga
    decision = decision.then(replace(saga, error=error), _closed(
        saga, "lost", "no answer before the saga gave up on the step", now))
    if saga.phase == ACTION:
        return _turn_back(definition, decision, now)
    return _end(definition, decision, FAILED, now)  # a compensation that cannot finish


def _end(definition: SagaDefinition, decision: Decision, status: str,
         now: datetime) -> Decision:
    saga = replace(decision.saga, status=status, deadline_at=None, ended_at=now)
    decision = decision.then(saga)
    if status != COMPLETED and definition.if_not_completed and _changed_anything(saga):
        decision = decision.then(saga, FollowUp(definition.if_not_completed))
    return decision


def _changed_anything(saga: SagaState) -> bool:
    """A step did its work: the saga got past its first step, or it compensated one."""
    return saga.current_step > 0 or saga.phase == COMPENSATION


def _logged(definition: SagaDefinition, saga: SagaState, delivery: Delivery, status: str,
            now: datetime, *, error: str | None = None) -> Decision:
    """The delivery's outcome in the step log: a new entry for a first delivery (counted
    with its answer), else the outcome of the entry its counting made."""
    if delivery.attempt is None:
        entry: Effect = _attempt(definition, saga, delivery, status,
                                 started_at=delivery.started_at, ended_at=now, error=error)
    else:
        entry = Outcome(saga.current_step, saga.phase, delivery.attempt, status, now, error)
    return Decision(saga, (entry,))


def _superseding(decision: Decision, delivery: Delivery, now: datetime) -> Decision:
    """The step answered: no other attempt of it is left running."""
    saga = decision.saga
    if saga.attempt <= 1:
        return decision
    return decision.then(saga, _closed(
        saga, "superseded", f"attempt {delivery.attempt or saga.attempt} answered first", now))


def _attempt(definition: SagaDefinition, saga: SagaState, delivery: Delivery, status: str,
             **times: Any) -> Attempt:
    step = definition.steps[saga.current_step]
    return Attempt(step=step.name, step_index=saga.current_step, phase=saga.phase,
                   attempt=saga.attempt, status=status, task_name=task_name(step, saga.phase),
                   task_id=delivery.task_id, worker=delivery.worker, **times)


def _closed(saga: SagaState, status: str, error: str, now: datetime) -> Closed:
    return Closed(saga.current_step, saga.phase, status, error, now)


def policy(definition: SagaDefinition, saga: SagaState) -> Retry:
    """The retry policy of the step and phase the saga is at."""
    step = definition.steps[saga.current_step]
    return step.retry if saga.phase == ACTION else step.compensation_retry


def task_name(step: Step, phase: str) -> str:
    """The task a step's phase runs."""
    return step.action if phase == ACTION else step.compensation  # type: ignore[return-value]
