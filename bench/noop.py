"""The baseline's tasks: a bare Celery chain of three no-op tasks, the last one counting."""

from __future__ import annotations

from functools import cache

import redis

from petstore.settings import get_settings
from workers.celery_app import app

DONE_KEY = "bench:chains-done"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing: a chain link."""


@app.task(name="bench.done")
def done() -> None:
    """The chain's last link: counts one finished chain."""
    _redis().incr(DONE_KEY)
