"""How a participant runs a saga step: count the delivery, act and advance in one
transaction, or record the failure and say when to retry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from models.db import unit_of_work
from sagas import engine, faults

log = logging.getLogger(__name__)
StepFunction = Callable[[Session, dict[str, Any]], dict[str, Any] | None]


class StepRefused(Exception):
    """The step refused for a business reason; the saga is compensating."""


class StepFailed(Exception):
    """The step failed and gets no retry from this delivery."""


def run_step(task_name: str, function: StepFunction, *, saga_id: str, step: str, phase: str,
             task_id: str | None) -> float | None:
    """Returns the seconds to wait before this step's next try, or None when done.

    Raises StepRefused or StepFailed, after the saga has recorded it, so that the task
    shows as failed with a readable reason (in Flower, for one).
    """
    with unit_of_work() as session:
        attempt = engine.begin_attempt(session, saga_id, step, phase, task_id)
    if attempt is None:
        log.info("%s: not waited for (duplicate, late or out of attempts); nothing done",
                 task_name)
        return None
    try:
        with unit_of_work() as session:

            def act(payload: dict[str, Any]) -> dict[str, Any] | None:
                reply = function(session, payload)
                faults.inject(task_name)  # mid-step: after the work, before the commit
                return reply

            refusal = engine.finish_attempt(session, saga_id, step, phase, attempt, act)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        with unit_of_work() as session:
            retry_in = engine.fail_attempt(session, saga_id, step, phase, attempt, error)
        if retry_in is None:
            log.warning("%s attempt %d failed, no retry left: %s", task_name, attempt, error)
            raise StepFailed(f"{step} {phase} attempt {attempt}: {error}") from exc
        log.info("%s attempt %d failed, retry in %.2fs: %s", task_name, attempt, retry_in, error)
        return retry_in
    if refusal:
        log.info("%s attempt %d refused: %s", task_name, attempt, refusal)
        raise StepRefused(refusal)
    log.info("%s attempt %d done", task_name, attempt)
    return None
