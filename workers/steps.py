"""Saga steps as Celery tasks: a plain function of (session, saga data) becomes the task
`service.action`, run through the engine, retried by Celery with the step's backoff."""

from __future__ import annotations

from collections.abc import Callable

from celery import Task

from sagas.runner import StepFunction, run_step
from workers.celery_app import app


def saga_step(name: str) -> Callable[[StepFunction], Task]:
    def register(function: StepFunction) -> Task:
        @app.task(name=name, bind=True, max_retries=None)
        def step_task(self: Task, saga_id: str, step: str, phase: str) -> None:
            retry_in = run_step(name, function, saga_id=saga_id, step=step, phase=phase,
                                task_id=self.request.id)
            if retry_in is not None:
                # The engine counts attempts; Celery only waits and delivers again.
                raise self.retry(countdown=retry_in)

        step_task.__doc__ = function.__doc__
        return step_task

    return register
