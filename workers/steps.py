"""Saga steps as Celery tasks: a plain function of (session, saga data) becomes the task
`service.action`, run through the engine, retried by Celery with the step's backoff."""

from __future__ import annotations

from collections.abc import Callable

from celery import Task

from common import tracing
from models.db import utcnow
from sagas import faults
from sagas.engine import Delivery, StepRefused, Work, run_step
from workers.celery_app import app, countdown


def saga_step(name: str) -> Callable[[Work], Task]:
    def register(function: Work) -> Task:
        work = faults.injected(name, function)

        # A refusal is the step's answer, not a fault: Celery reports the task failed with
        # the refusal's reason and logs one INFO line, no traceback (`throws`).
        # `counts_crashes`: a redelivery is counted against the step's attempts (the
        # guardrails check that every saga step is one of these).
        @app.task(name=name, bind=True, max_retries=None, throws=(StepRefused,),
                  counts_crashes=True)
        def step_task(self: Task, saga_id: str, step: str, phase: str) -> None:
            # A redelivered message may have killed its worker: the engine counts it first.
            redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
            delivery = Delivery(saga_id, step, phase, task_id=self.request.id,
                                started_at=utcnow(), redelivered=redelivered,
                                worker=self.request.hostname)
            with tracing.saga_span(saga_id, f"{step} {phase}", **{"saga.step": step,
                                                                  "saga.phase": phase}):
                retry_in = run_step(name, work, delivery)
            if retry_in is not None:
                # The engine counts attempts; Celery only waits and delivers again.
                raise self.retry(countdown=countdown(retry_in))

        step_task.__doc__ = function.__doc__
        return step_task

    return register
