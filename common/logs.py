"""Logs that name the saga: every line logged while a saga's step runs (or starts)
carries `saga=<id> step=<name> phase=<phase>`, in logfmt, so `grep saga=<id>` tells
its story across the API and every worker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

NONE = {"saga_id": "-", "saga_step": "-", "saga_phase": "-"}
_current: ContextVar[dict[str, str]] = ContextVar("saga", default=NONE)
FORMAT = ("ts=%(asctime)s level=%(levelname)s logger=%(name)s saga=%(saga_id)s "
          "step=%(saga_step)s phase=%(saga_phase)s msg=%(message)r")


def set_saga(saga_id: str, step: str = "-", phase: str = "-") -> None:
    """Name the saga for every line this thread logs from now on."""
    _current.set({"saga_id": saga_id, "saga_step": step, "saga_phase": phase})


def clear_saga() -> None:
    _current.set(NONE)


@contextmanager
def saga_logged(saga_id: str, step: str = "-", phase: str = "-") -> Iterator[None]:
    token = _current.set({"saga_id": saga_id, "saga_step": step, "saga_phase": phase})
    try:
        yield
    finally:
        _current.reset(token)


class SagaContext(logging.Filter):
    """Adds the current saga's id, step and phase to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _current.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def install(handler: logging.Handler, fmt: str = FORMAT) -> None:
    """Make a handler write logfmt lines that name the saga."""
    handler.addFilter(SagaContext())
    handler.setFormatter(logging.Formatter(fmt))
