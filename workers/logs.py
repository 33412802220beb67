"""Worker logs name the saga of the task that runs (see `common.logs`)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, task_prerun

from common import logs

TASK_FORMAT = logs.FORMAT.replace("logger=%(name)s", "task=%(task_name)s task_id=%(task_id)s")


@after_setup_logger.connect
def _worker_lines(logger: logging.Logger, **_: Any) -> None:
    for handler in logger.handlers:
        logs.install(handler)


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
