"""How a participant runs a saga step: count the delivery, act and advance in one
transaction, or record the failure and say when to retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from models.db import unit_of_work
from sagas import engine, faults

StepFunction = Callable[[Session, dict[str, Any]], dict[str, Any] | None]


def run_step(task_name: str, function: StepFunction, *, saga_id: str, step: str, phase: str,
             task_id: str | None) -> float | None:
    """Returns the seconds to wait before this step's next try, or None when done."""
    with unit_of_work() as session:
        attempt = engine.begin_attempt(session, saga_id, step, phase, task_id)
    if attempt is None:
        return None
    try:
        with unit_of_work() as session:

            def act(payload: dict[str, Any]) -> dict[str, Any] | None:
                reply = function(session, payload)
                faults.inject(task_name)  # mid-step: after the work, before the commit
                return reply

            engine.finish_attempt(session, saga_id, step, phase, attempt, act)
    except Exception as exc:
        with unit_of_work() as session:
            return engine.fail_attempt(session, saga_id, step, phase, attempt,
                                       f"{type(exc).__name__}: {exc}"[:1000])
    return None
