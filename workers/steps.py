"""Saga steps as Celery tasks: a plain function of (session, saga data) becomes the task
`service.action`, run through the engine, retried by Celery with the step's backoff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from sagas.engine import Delivery
from sagas.runner import StepFunction, run_step
from workers.celery_app import app


def saga_step(name: str) -> Callable[[StepFunction], Task]:
    def register(function: StepFunction) -> Task:
        @app.task(name=name, bind=True, max_retries=None)
        def step_task(self: Task, saga_id: str, step: str, phase: str,
                      sent: dict[str, Any] | None = None) -> None:
            # `sent`: the saga's state as the engine sent the command, absent from one sent
            # by hand (`celery call`); a retry acts on the saga as it is now.
            delivery = Delivery(saga_id, step, phase, task_id=self.request.id,
                                sent=None if self.request.retries else sent)
            # A redelivered message may have killed its worker: it is counted first.
            redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
            retry_in = run_step(name, function, delivery, redelivered=redelivered)
            if retry_in is not None:
                # The engine counts attempts; Celery only waits and delivers again.
                raise self.retry(countdown=retry_in)

        step_task.__doc__ = function.__doc__
        return step_task

    return register
