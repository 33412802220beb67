"""How a participant runs a saga step: act and advance in one transaction, or record the
refusal or the failure and say when to retry.

A first delivery is counted in the transaction that does its work, and tried first on the
saga's state its command carries, without locking the saga (`engine.finish_sent`); when
the saga moved on meanwhile, or the step did not succeed, it runs again with the saga
locked, which decides. A delivery that may follow a crash (the broker redelivered it, or
the saga counted earlier ones) is counted in a transaction of its own first, so that a
step that keeps killing its worker still uses up its attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from models.db import unit_of_work
from sagas import engine, faults
from sagas.engine import Delivery

log = logging.getLogger(__name__)
StepFunction = Callable[[Session, dict[str, Any]], dict[str, Any] | None]


class StepRefused(Exception):
    """The step refused for a business reason; the saga is compensating."""


class StepFailed(Exception):
    """The step failed and gets no retry from this delivery."""


@dataclass(frozen=True)
class _Participant:
    """A step's task: its function, and the fault its delivery meets mid-step, if any."""

    task_name: str
    function: StepFunction
    mid_step: Callable[[], None]

    def acting_in(self, session: Session) -> engine.Action:
        def act(payload: dict[str, Any]) -> dict[str, Any] | None:
            reply = self.function(session, payload)
            self.mid_step()  # after the work, before the commit
            return reply

        return act


def run_step(task_name: str, function: StepFunction, delivery: Delivery, *,
             redelivered: bool = False) -> float | None:
    """Returns the seconds to wait before this step's next try, or None when done.

    Raises StepRefused or StepFailed, after the saga has recorded it, so that the task
    shows as failed with a readable reason (in Flower, for one). An error while counting
    a delivery propagates, for Celery to retry the task.
    """
    participant = _Participant(task_name, function, faults.drawn(task_name))
    try:
        if redelivered:
            return _run(participant, _count(delivery))
        if delivery.sent is not None and _finished_as_sent(participant, delivery):
            return None
        return _run(participant, delivery)
    except engine.CountFirst:  # a retry, or a delivery after one that may have crashed
        return _run(participant, _count(delivery))


def _finished_as_sent(participant: _Participant, delivery: Delivery) -> bool:
    """Finish a first delivery on the saga's state its command carries; False when it
    must run with the saga locked, where whatever happened here happens again and counts."""
    try:
        with unit_of_work() as session:
            engine.finish_sent(session, delivery, participant.acting_in(session))
    except Exception as exc:  # the saga moved on, or the step or the database failed
        log.debug("%s: %s; running it with the saga locked", participant.task_name, exc)
        return False
    log.info("%s attempt 1 done", participant.task_name)
    return True


def _run(participant: _Participant, delivery: Delivery | None) -> float | None:
    """Run a delivery that is counted, or first; None: one the saga does not wait for."""
    if delivery is not None:
        try:
            with unit_of_work() as session:
                done = engine.finish_attempt(session, delivery, participant.acting_in(session))
        except engine.CountFirst:
            raise
        except Exception as exc:
            return _failed(participant.task_name, delivery, exc)
        if done:
            log.info("%s attempt %d done", participant.task_name, delivery.attempt or 1)
            return None
    log.info("%s: not waited for (duplicate, late or out of attempts); nothing done",
             participant.task_name)
    return None


def _count(delivery: Delivery) -> Delivery | None:
    with unit_of_work() as session:
        attempt = engine.begin_attempt(session, delivery)
    return None if attempt is None else replace(delivery, attempt=attempt)


def _failed(task_name: str, delivery: Delivery, exc: Exception) -> float | None:
    """Record what went wrong, now that the delivery's work has rolled back."""
    attempt = delivery.attempt or 1
    if isinstance(exc, engine.Refused):
        with unit_of_work() as session:
            recorded = engine.refuse_attempt(session, delivery, exc)
        if not recorded:
            log.info("%s attempt %d refused after another attempt answered", task_name, attempt)
            return None
        log.info("%s attempt %d refused: %s", task_name, attempt, exc)
        raise StepRefused(f"{delivery.step} refused: {exc.message}") from exc
    error = f"{type(exc).__name__}: {exc}"[:1000]
    with unit_of_work() as session:
        retry_in = engine.fail_attempt(session, delivery, error)
    if retry_in is None:
        log.warning("%s attempt %d failed, no retry left: %s", task_name, attempt, error)
        raise StepFailed(f"{delivery.step} {delivery.phase} attempt {attempt}: {error}") from exc
    log.info("%s attempt %d failed, retry in %.2fs: %s", task_name, attempt, retry_in, error)
    return retry_in
