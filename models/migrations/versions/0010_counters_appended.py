"""saga counters appended to, not updated in place

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00

0009's triggers updated a counter row in place, sharded by connection, so the transaction
that ended a saga held its counter rows while it waited for the disk, and any other
transaction of the same shard waited behind it: the counters cost the sagas about an
eighth of their throughput. The triggers now append a row of +1 or -1 (an insert waits
for nobody), the tables lose their keys and shards, and readers sum the rows, which a fold
(`models.counters.fold`, the beat and each scrape) keeps to one row per key.
"""

from collections.abc import Sequence
from typing import Any

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Filled in with 0009's statuses, buckets and durations (`upgrade`).
COUNT_SAGAS = """
CREATE OR REPLACE FUNCTION count_sagas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO saga_counts VALUES (OLD.kind, OLD.status, -1);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO saga_counts VALUES (OLD.kind, OLD.status, -1), (NEW.kind, NEW.status, 1);
    ELSE
        INSERT INTO saga_counts VALUES (NEW.kind, NEW.status, 1);
        INSERT INTO saga_totals VALUES (NEW.kind, 'started', 1);
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN {ENDED}
            AND (TG_OP = 'INSERT' OR OLD.status NOT IN {ENDED}) THEN
        INSERT INTO saga_totals VALUES (NEW.kind, NEW.status, 1);
    END IF;
    RETURN NULL;
END $$;
"""

COUNT_STEPS = """
CREATE OR REPLACE FUNCTION count_steps() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    took float8;
BEGIN
    IF NEW.status NOT IN {ANSWERED} OR NEW.started_at IS NULL OR NEW.ended_at IS NULL
            OR (TG_OP = 'UPDATE' AND OLD.status IN {ANSWERED}) THEN
        RETURN NULL;
    END IF;
    took := {SECONDS};
    INSERT INTO step_totals
        SELECT sagas.kind, NEW.task_name, NEW.phase, NEW.status,
               {BUCKET}, 1, took
        FROM sagas WHERE sagas.id = NEW.saga_id;
    RETURN NULL;
END $$;
"""

KEYS = {"saga_counts": ("kind", "status"), "saga_totals": ("kind", "event"),
        "step_totals": ("kind", "task_name", "phase", "status", "bucket")}
SUMS = {"saga_counts": ("n",), "saga_totals": ("n",), "step_totals": ("n", "seconds")}
TYPES = {"n": "bigint", "seconds": "float8"}


def sharded() -> Any:
    """0009's module: its triggers, and the statuses and buckets they counted by."""
    return op.get_context().script.get_revision("0009").module


def upgrade() -> None:
    # Writers of sagas and attempts wait until this commits: no count lands in a shape
    # that is going.
    op.execute("LOCK TABLE sagas, saga_steps IN SHARE MODE")
    before = sharded()
    op.execute(COUNT_SAGAS.format(ENDED=before.ENDED))
    op.execute(COUNT_STEPS.format(ANSWERED=before.ANSWERED,
                                  BUCKET=before.BUCKET.format(seconds="took"),
                                  SECONDS=before.SECONDS.format(row="NEW")))
    for table, keys in KEYS.items():
        summed(table, ", ".join(keys))
        not_null(table, (*keys, *SUMS[table]))


def downgrade() -> None:
    op.execute("LOCK TABLE sagas, saga_steps IN SHARE MODE")
    for table, keys in KEYS.items():
        summed(table, f"{', '.join(keys)}, 0::smallint AS shard")
        op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(keys)}, shard)")
        not_null(table, SUMS[table])
    # 0009's triggers, as it wrote them.
    for function in (sharded().COUNT_SAGAS, sharded().COUNT_STEPS):
        op.execute(function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def summed(table: str, columns: str) -> None:
    """The table made anew of these columns and, last, the sums of its rows by key."""
    sums = ", ".join(f"sum({c})::{TYPES[c]} AS {c}" for c in SUMS[table])
    op.execute(f"CREATE TABLE {table}_new AS SELECT {columns}, {sums} FROM {table} "
               f"GROUP BY {', '.join(KEYS[table])}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")


def not_null(table: str, columns: Sequence[str]) -> None:
    op.execute(f"ALTER TABLE {table} "
               + ", ".join(f"ALTER COLUMN {c} SET NOT NULL" for c in columns))
