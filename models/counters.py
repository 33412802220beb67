"""Counters of sagas and their attempts, kept by the database as they change.

Triggers (migration 0010) append a row of +1 or -1 to these tables in each transaction that
starts, moves, ends or deletes a saga or answers an attempt: an insert, which waits for no
other transaction, so a counter costs the hot path no lock. A reader sums the rows; `fold`
replaces them by one row per key, so a sum reads the keys plus what was added since the
last fold, however long the history. The beat folds every minute and each scrape folds
before it reads.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    SmallInteger,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from models.db import Base

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Tables without a key: rows are deltas until folded.
saga_counts = Table(  # how many sagas of a kind are in a status now
    "saga_counts", Base.metadata,
    Column("kind", String(50), nullable=False),
    Column("status", String(16), nullable=False),
    Column("n", BigInteger, nullable=False))
saga_totals = Table(  # sagas of a kind ever started (event "started") or ended in a status
    "saga_totals", Base.metadata,
    Column("kind", String(50), nullable=False),
    Column("event", String(16), nullable=False),
    Column("n", BigInteger, nullable=False))
# Answered attempts ever, by saga kind, task, phase, status and duration bucket (the index
# of the first of STEP_BUCKETS they took at most; past the last, its length), with their
# seconds.
step_totals = Table(
    "step_totals", Base.metadata,
    Column("kind", String(50), nullable=False),
    Column("task_name", String(100), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("bucket", SmallInteger, nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False))
COUNTERS = (saga_counts, saga_totals, step_totals)
# Whoever folds holds this for its transaction; another fold at the same time skips.
FOLDING = 0x5A6A_C0DE


def fold(connection: Connection) -> bool:
    """Replace each counter's rows by their sums, one row per key, in the caller's
    transaction; False, doing nothing, when another transaction is folding."""
    if not connection.scalar(select(func.pg_try_advisory_xact_lock(FOLDING))):
        return False
    # A fold lost in a crash leaves the rows it summed, for the next one: no disk wait.
    connection.execute(select(func.set_config("synchronous_commit", "off", True)))
    for table in COUNTERS:
        sums = [c for c in table.c if c.name in ("n", "seconds")]
        keys = [c for c in table.c if c not in sums]
        # Rows added after this statement's snapshot are not deleted: the next fold's.
        gone = delete(table).returning(*table.c).cte("gone")
        connection.execute(insert(table).from_select(
            [c.name for c in (*keys, *sums)],
            select(*(gone.c[c.name] for c in keys), *(func.sum(gone.c[c.name]) for c in sums))
            .group_by(*(gone.c[c.name] for c in keys))))
    return True
