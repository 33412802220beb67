"""What a /metrics scrape costs with 1k, 100k and 1M finished sagas in the tables.

    .venv/bin/python bench/metrics_scrape.py --sizes 1000 100000 1000000

Grows the tables in bulk SQL to each size in turn (finished create-order sagas, each with
three answered attempts, counted by the database's triggers as the engine's writes are),
folding the counters and vacuuming them every 5,000 sagas, as beat and autovacuum would
every minute of a busy system, then times, in one process, a scrape as the collector makes
it (its fold, then its reads), against the aggregate queries over the whole history that
they replaced (the median of 20 each).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, servers

# Sagas a transaction adds, and those a busy system finishes in a minute (some 80 a
# second here), between which the counters are folded and vacuumed.
CHUNK, MINUTE = 1_000, 5_000
# Each saga's three attempts: (step, index, task, milliseconds).
STEPS = "(VALUES ('reserve_pet', 0, 'pets.reserve_pet', 5), " \
        "('place_order', 1, 'orders.place_order', 8), " \
        "('count_reservation', 2, 'inventory.reserve_stock', 3))"
GROW = f"""
WITH grown AS (
    INSERT INTO sagas (id, kind, status, payload, current_step, phase, attempt, sweeps,
                       version, created_at, updated_at, ended_at)
    SELECT gen_random_uuid(), 'create_order', 'completed', '{{}}', 2, 'action', 1, 0, 4,
           now(), now(), now()
    FROM generate_series(1, :count)
    RETURNING id)
INSERT INTO saga_steps (saga_id, step, step_index, phase, attempt, status, task_name,
                        started_at, ended_at)
SELECT grown.id, s.step, s.idx, 'action', 1, 'succeeded', s.task,
       now() - make_interval(secs => s.ms / 1000.0), now()
FROM grown CROSS JOIN {STEPS} AS s(step, idx, task, ms)
"""
# What a scrape ran before the counters: aggregates over every saga and every attempt.
REPLACED = (
    "SELECT kind, status, count(*) FROM sagas GROUP BY kind, status",
    "SELECT sagas.kind, saga_steps.task_name, count(*) FROM saga_steps JOIN sagas "
    "ON sagas.id = saga_steps.saga_id WHERE saga_steps.phase = 'compensation' AND "
    "saga_steps.status = 'succeeded' GROUP BY sagas.kind, saga_steps.task_name",
    "SELECT task_name, count(*), sum(extract(epoch FROM ended_at - started_at)), "
    + ", ".join(f"count(*) FILTER (WHERE extract(epoch FROM ended_at - started_at) <= {b})"
                for b in (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
    + " FROM saga_steps WHERE status IN ('succeeded', 'failed', 'refused') "
    "AND started_at IS NOT NULL AND ended_at IS NOT NULL GROUP BY task_name",
)


def grow_to(total: int) -> None:
    from sqlalchemy import func, select, text

    from models import counters
    from models.db import one_statement, unit_of_work
    from models.saga import Saga

    def settle() -> None:
        # As beat's fold and autovacuum, each minute, leave the counter tables.
        with unit_of_work() as session:
            counters.fold(session.connection())
        with one_statement() as connection:
            connection.execute(text("VACUUM saga_counts, saga_totals, step_totals"))

    with unit_of_work() as session:
        missing = total - session.scalar(select(func.count()).select_from(Saga))
    grown = 0
    while missing > 0:
        with unit_of_work() as session:
            session.execute(text(GROW), {"count": min(CHUNK, missing)})
        missing, grown = missing - CHUNK, grown + CHUNK
        if grown % MINUTE == 0:
            settle()
    settle()
    with one_statement() as connection:
        connection.execute(text("ANALYZE"))


def median_ms(run: Callable[[], object], times: int = 20) -> float:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        run()
        took.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(took), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with servers():
        from sqlalchemy import text

        from models.db import unit_of_work
        from web.metrics import PetstoreCollector

        def replaced() -> None:
            with unit_of_work() as session:
                for query in REPLACED:
                    session.execute(text(query)).all()

        results: dict[str, object] = {}
        for size in sorted(args.sizes):
            grow_to(size)
            scrape = median_ms(lambda: list(PetstoreCollector().collect()))
            before = median_ms(replaced, times=5 if size >= 500_000 else 20)
            results[f"{size:,} finished sagas: scrape, ms"] = scrape
            results[f"{size:,} finished sagas: the aggregates it replaced, ms"] = before
        report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
