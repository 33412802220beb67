"""How a participant runs a saga step: act and advance in one transaction, or record the
refusal or the failure and say when to retry.

A first delivery is counted in the transaction that does its work. A delivery that may
follow a crash (the broker redelivered it, or the saga counted earlier ones) is counted
in a transaction of its own first, so that a step that keeps killing its worker still
uses up its attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
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


def run_step(task_name: str, function: StepFunction, delivery: Delivery, *,
             redelivered: bool = False) -> float | None:
    """Returns the seconds to wait before this step's next try, or None when done.

    Raises StepRefused or StepFailed, after the saga has recorded it, so that the task
    shows as failed with a readable reason (in Flower, for one). An error while counting
    a delivery propagates, for Celery to retry the task.
    """
    try:
        return _run(task_name, function, _count(delivery) if redelivered else delivery)
    except engine.CountFirst:  # a retry, or a delivery after one that may have crashed
        return _run(task_name, function, _count(delivery))


def _run(task_name: str, function: StepFunction, delivery: Delivery | None) -> float | None:
    """Run a delivery that is counted, or first; None: one the saga does not wait for."""
    if delivery is not None:
        try:
            done = _finish(task_name, function, delivery)
        except engine.CountFirst:
            raise
        except Exception as exc:
            return _failed(task_name, delivery, exc)
        if done:
            log.info("%s attempt %d done", task_name, delivery.attempt or 1)
            return None
    log.info("%s: not waited for (duplicate, late or out of attempts); nothing done",
             task_name)
    return None


def _count(delivery: Delivery) -> Delivery | None:
    with unit_of_work() as session:
        attempt = engine.begin_attempt(session, delivery)
    return None if attempt is None else replace(delivery, attempt=attempt)


def _finish(task_name: str, function: StepFunction, delivery: Delivery) -> bool:
    with unit_of_work() as session:

        def act(payload: dict[str, Any]) -> dict[str, Any] | None:
            reply = function(session, payload)
            faults.inject(task_name)  # mid-step: after the work, before the commit
            return reply

        return engine.finish_attempt(session, delivery, act)


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
