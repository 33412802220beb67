"""counters of sagas and step attempts, kept by the database as they change

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 08:00:00

/metrics computed every figure with aggregates over the whole saga history at each scrape,
so a scrape grew with history. Triggers now keep counters in the transactions that already
commit each change: sagas by kind and status (`saga_counts`, a gauge), sagas started and
ended (`saga_totals`), and answered attempts by task, phase, status and duration bucket
(`step_totals`). Each connection writes its own shard (`pg_backend_pid() % 16`), so that
concurrent commits do not queue on one row. The counters start from the rows there are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENDED = "('completed', 'compensated', 'refused', 'failed')"
ANSWERED = "('succeeded', 'failed', 'refused')"
# The bucket of a duration: how many of the histogram's bounds it exceeds.
BUCKET = ("(SELECT count(*) FROM unnest(ARRAY[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, "
          "1.0, 2.5, 5.0, 10.0]::float8[]) AS bound WHERE bound < {seconds})::smallint")
SECONDS = "greatest(extract(epoch FROM {row}.ended_at - {row}.started_at)::float8, 0)"

COUNT_SAGAS = f"""
CREATE FUNCTION count_sagas() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    part smallint := pg_backend_pid() % 16;  -- the shard this connection writes
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO saga_counts AS c VALUES (OLD.kind, OLD.status, part, -1)
            ON CONFLICT (kind, status, shard) DO UPDATE SET n = c.n - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO saga_counts AS c VALUES (NEW.kind, NEW.status, part, 1)
            ON CONFLICT (kind, status, shard) DO UPDATE SET n = c.n + 1;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO saga_totals AS t VALUES (NEW.kind, 'started', part, 1)
            ON CONFLICT (kind, event, shard) DO UPDATE SET n = t.n + 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status IN {ENDED}
            AND (TG_OP = 'INSERT' OR OLD.status NOT IN {ENDED}) THEN
        INSERT INTO saga_totals AS t VALUES (NEW.kind, NEW.status, part, 1)
            ON CONFLICT (kind, event, shard) DO UPDATE SET n = t.n + 1;
    END IF;
    RETURN NULL;
END $$;
"""

COUNT_STEPS = f"""
CREATE FUNCTION count_steps() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    took float8;
BEGIN
    IF NEW.status NOT IN {ANSWERED} OR NEW.started_at IS NULL OR NEW.ended_at IS NULL
            OR (TG_OP = 'UPDATE' AND OLD.status IN {ANSWERED}) THEN
        RETURN NULL;
    END IF;
    took := {SECONDS.format(row="NEW")};
    INSERT INTO step_totals AS s
        SELECT sagas.kind, NEW.task_name, NEW.phase, NEW.status,
               {BUCKET.format(seconds="took")}, pg_backend_pid() % 16, 1, took
        FROM sagas WHERE sagas.id = NEW.saga_id
        ON CONFLICT (kind, task_name, phase, status, bucket, shard)
        DO UPDATE SET n = s.n + 1, seconds = s.seconds + EXCLUDED.seconds;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "saga_counts",
        sa.Column("kind", sa.String(length=50), primary_key=True),
        sa.Column("status", sa.String(length=16), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False))
    op.create_table(
        "saga_totals",
        sa.Column("kind", sa.String(length=50), primary_key=True),
        sa.Column("event", sa.String(length=16), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False))
    op.create_table(
        "step_totals",
        sa.Column("kind", sa.String(length=50), primary_key=True),
        sa.Column("task_name", sa.String(length=100), primary_key=True),
        sa.Column("phase", sa.String(length=16), primary_key=True),
        sa.Column("status", sa.String(length=16), primary_key=True),
        sa.Column("bucket", sa.SmallInteger(), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False))
    # Tables first, then the triggers, then what was there before: in one transaction,
    # which holds off writers of those tables until it commits.
    op.execute("LOCK TABLE sagas, saga_steps IN SHARE MODE")
    op.execute(COUNT_SAGAS)
    op.execute(COUNT_STEPS)
    op.execute("CREATE TRIGGER sagas_counted AFTER INSERT OR DELETE ON sagas "
               "FOR EACH ROW EXECUTE FUNCTION count_sagas()")
    op.execute("CREATE TRIGGER sagas_recounted AFTER UPDATE OF status ON sagas FOR EACH ROW "
               "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION count_sagas()")
    op.execute("CREATE TRIGGER saga_steps_counted AFTER INSERT OR UPDATE OF status ON "
               "saga_steps FOR EACH ROW EXECUTE FUNCTION count_steps()")
    op.execute("INSERT INTO saga_counts SELECT kind, status, 0, count(*) FROM sagas "
               "GROUP BY kind, status")
    op.execute("INSERT INTO saga_totals SELECT kind, 'started', 0, count(*) FROM sagas "
               f"GROUP BY kind UNION ALL SELECT kind, status, 0, count(*) FROM sagas "
               f"WHERE status IN {ENDED} GROUP BY kind, status")
    seconds = SECONDS.format(row="saga_steps")
    op.execute(
        f"INSERT INTO step_totals SELECT sagas.kind, saga_steps.task_name, saga_steps.phase, "
        f"saga_steps.status, "
        f"{BUCKET.format(seconds=seconds)} AS bucket, 0, count(*), sum({seconds}) "
        f"FROM saga_steps JOIN sagas ON sagas.id = saga_steps.saga_id "
        f"WHERE saga_steps.status IN {ANSWERED} AND saga_steps.started_at IS NOT NULL "
        f"AND saga_steps.ended_at IS NOT NULL "
        f"GROUP BY sagas.kind, saga_steps.task_name, saga_steps.phase, saga_steps.status, "
        f"bucket")


def downgrade() -> None:
    op.execute("DROP TRIGGER saga_steps_counted ON saga_steps")
    op.execute("DROP TRIGGER sagas_recounted ON sagas")
    op.execute("DROP TRIGGER sagas_counted ON sagas")
    op.execute("DROP FUNCTION count_steps()")
    op.execute("DROP FUNCTION count_sagas()")
    for table in ("step_totals", "saga_totals", "saga_counts"):
        op.drop_table(table)
