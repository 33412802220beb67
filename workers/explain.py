"""Why a saga waits, in words: the step it waits for, where that step's command is, who
last took it, and what happens when its deadline passes (by the engine's own rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kombu.exceptions import OperationalError as BrokerError

from models.db import utcnow
from models.saga import IN_FLIGHT, Saga
from sagas import machine
from sagas.machine import TimedOut
from sagas.registry import definition_of
from workers import repair
from workers.celery_app import app, messages_waiting


def waiting_for(saga: Saga) -> dict[str, Any] | None:
    """What the saga waits for now; None once it has ended. `saga.steps` must be loaded."""
    if saga.status not in IN_FLIGHT:
        return None
    definition = definition_of(saga.kind, saga.definition_version)
    step = definition.steps[saga.current_step]
    task = machine.task_name(step, saga.phase)
    queue = app.amqp.router.route({}, task)["queue"].name
    attempts = [entry for entry in saga.steps
                if (entry.step_index, entry.phase) == (saga.current_step, saga.phase)]
    last = attempts[-1] if attempts else None
    return {
        "step": step.name, "phase": saga.phase, "task": task, "queue": queue,
        "queued": _queued(queue), "attempt": saga.attempt,
        "attempts": machine.policy(definition, repair.state_of(saga)).attempts,
        "sweeps": saga.sweeps, "deadline": saga.deadline_at,
        "lastWorker": last.worker if last else None,
        "lastAttempt": f"attempt {last.attempt} {last.status}" if last else None,
        "atDeadline": repair.plan(saga, TimedOut()),
    }


def _queued(queue: str) -> int | None:
    """Messages waiting in the queue; None: the broker is out of reach."""
    try:
        return messages_waiting(queue)
    except (*app.connection_for_read().connection_errors, BrokerError, OSError):
        return None


def in_words(saga: Saga, now: datetime | None = None) -> list[str]:
    """`celery -A workers saga explain`: the saga's wait, a line a fact."""
    waiting = waiting_for(saga)
    if waiting is None:
        return [f"saga {saga.id} ({saga.kind}) is {saga.status}: it waits for nothing"]
    queued = waiting["queued"]
    left = (waiting["deadline"] - (now or utcnow())).total_seconds()
    return [
        f"saga {saga.id} ({saga.kind}) is {saga.status}: it waits for {waiting['step']} "
        f"({waiting['phase']}), the task {waiting['task']}",
        f"queue {waiting['queue']}: " + ("the broker is out of reach" if queued is None else
                                         f"{queued} message(s) waiting to be taken"),
        f"attempt {waiting['attempt']} of {waiting['attempts']}, dispatched again "
        f"{waiting['sweeps']} time(s); " + (
            f"last taken by {waiting['lastWorker'] or 'an unnamed worker'} "
            f"({waiting['lastAttempt']})" if waiting["lastAttempt"]
            else "no worker has taken it yet"),
        f"deadline {waiting['deadline']:%Y-%m-%d %H:%M:%S} UTC ("
        + (f"in {left:.0f} s" if left >= 0 else f"{-left:.0f} s ago") + "); then the "
        f"sweeper {waiting['atDeadline'].replace('would run', 'runs')}",
    ]
