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
             task_id: str | None, redelivered: bool = True) -> float | None:
    """Returns the seconds to wait before this step's next try, or None when done.

    A delivery the broker hands out again (its worker died, or it was never acked) is
    counted in a transaction of its own before it runs, so that a step that keeps
    crashing its worker runs out of attempts; a first delivery is counted in the
    transaction that runs it, one round trip to PostgreSQL fewer.

    Raises StepRefused or StepFailed, after the saga has recorded it, so that the task
    shows as failed with a readable reason (in Flower, for one).
    """
    attempt = None
    if redelivered:
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

            refusal = engine.finish_attempt(session, saga_id, step, phase, attempt, act,
                                            task_id)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        with unit_of_work() as session:
            retry_in = engine.fail_attempt(session, saga_id, step, phase, attempt, error,
                                           task_id)
        if retry_in is None:
            log.warning("%s failed, no retry left: %s", task_name, error)
            raise StepFailed(f"{step} {phase}: {error}") from exc
        log.info("%s failed, retry in %.2fs: %s", task_name, retry_in, error)
        return retry_in
    if refusal:
        log.info("%s refused: %s", task_name, refusal)
        raise StepRefused(refusal)
    log.info("%s done", task_name)
    return None
