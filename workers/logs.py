"""Worker logs name the saga of the task that runs (see `common.logs`)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_prerun

from common import logs
from workers.celery_app import HOUSEKEEPING

# Celery's routine lines about a task: beat sent it, the worker received it, it succeeded.
ROUTINE = ("celery.beat", "celery.worker.strategy", "celery.app.trace")
TASK_FORMAT = logs.FORMAT.replace("logger=%(name)s", "task=%(task_name)s task_id=%(task_id)s")


class WithoutHousekeeping(logging.Filter):
    """Celery's routine lines about housekeeping (every few seconds, all day) would be half
    the log: they are left out; its warnings and errors are not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not any(
            name in record.getMessage() for name in HOUSEKEEPING)


@after_setup_logger.connect
def _worker_lines(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        logs.install(handler)
    for name in ROUTINE:
        logging.getLogger(name).addFilter(WithoutHousekeeping())


@after_setup_task_logger.connect
def _task_lines(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        logs.install(handler, TASK_FORMAT)


@task_prerun.connect
def _name_the_saga(kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    """Kept until the next task starts, so Celery's own lines about this task (its
    success, retry or failure) name the saga too."""
    kwargs = kwargs or {}
    if "saga_id" in kwargs:
        logs.set_saga(kwargs["saga_id"], kwargs.get("step", "-"), kwargs.get("phase", "-"))
    else:
        logs.clear_saga()
