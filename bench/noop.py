"""The baseline's tasks: a bare Celery chain of no-op tasks, the last one counting; or of
tasks that each commit one row, as a saga's steps commit: the links before the last
without waiting for the disk (a step that leaves its saga in flight), the last one
waiting (the step that ends it)."""

from __future__ import annotations

import time
from functools import cache

import redis
from sqlalchemy import text

from common.settings import get_settings
from models.db import unit_of_work
from workers.celery_app import app

DONE_KEY = "bench:chains-done"
LAST_DONE_KEY = "bench:chains-last-done"  # when the last chain ended, as a Unix time
TABLE = "CREATE TABLE IF NOT EXISTS bench_links (id bigserial PRIMARY KEY)"


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def create_table() -> None:
    with unit_of_work() as session:
        session.execute(text(TABLE))


def commit_row(*, wait_for_disk: bool = True) -> None:
    with unit_of_work() as session:
        if not wait_for_disk:
            session.execute(text("SET LOCAL synchronous_commit = off"))
        session.execute(text("INSERT INTO bench_links DEFAULT VALUES"))


@app.task(name="bench.noop")
def noop(commit: bool = False) -> None:
    """A chain link: does nothing, or commits one row without waiting for the disk."""
    if commit:
        commit_row(wait_for_disk=False)


@app.task(name="bench.done")
def done(commit: bool = False) -> None:
    """The chain's last link: counts one finished chain, and says when it finished; or
    first commits one row, waiting for the disk."""
    if commit:
        commit_row()
    _redis().pipeline().incr(DONE_KEY).set(LAST_DONE_KEY, time.time()).execute()
