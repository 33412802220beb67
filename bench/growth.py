"""How the saga rate and latency change with worker processes and with rows already there.

    .venv/bin/python bench/growth.py --sagas 300

For 0, 10k and 100k ended sagas (with their step logs) and pets already in the tables,
and for 1, 2 and 4 worker processes: create-order sagas flat out (sagas per second), then
at half that rate (p50 and p99 from start to completion).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, servers, summary, worker
from bench.sagas import make_pets, run_sagas


def preload(total: int) -> None:
    """Grow the tables to `total` ended sagas, step-log rows and pets, in bulk SQL."""
    from sqlalchemy import func, select, text

    from models.db import unit_of_work
    from models.saga import Saga

    with unit_of_work() as session:
        missing = total - session.scalar(select(func.count()).select_from(Saga))
        if missing <= 0:
            return
        session.execute(text(
            "INSERT INTO sagas (id, kind, status, payload, current_step, phase, attempt, "
            "sweeps, version, created_at, updated_at, ended_at) "
            "SELECT gen_random_uuid(), 'create_order', 'completed', '{}'::jsonb, 2, "
            "'action', 1, 0, 9, now() - interval '1 day', now(), now() - interval '1 day' "
            "FROM generate_series(1, :n)"), {"n": missing})
        session.execute(text(
            "INSERT INTO saga_steps (saga_id, step, step_index, phase, attempt, status, "
            "task_name, started_at, ended_at) "
            "SELECT id, 'reserve_pet', 0, 'action', 1, 'succeeded', 'pets.reserve_pet', "
            "created_at, created_at FROM sagas WHERE payload = '{}'::jsonb "
            "AND NOT EXISTS (SELECT 1 FROM saga_steps s WHERE s.saga_id = sagas.id)"))
        session.execute(text(
            "INSERT INTO pets (name, status, photo_urls, version, created_at, updated_at) "
            "SELECT 'preloaded', 'sold', '{}', 1, now(), now() FROM generate_series(1, :n)"),
            {"n": missing})
        session.execute(text(
            "INSERT INTO inventory_pets (pet_id, status, version) "
            "SELECT id, status, version FROM pets ON CONFLICT DO NOTHING"))
        session.execute(text("ANALYZE"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with servers() as env:
        for rows in (0, 10_000, 100_000):
            preload(rows)
            for processes in (1, 2, 4):
                log = Path(env["PETSTORE_DATA_DIR"]) / f"worker-{rows}-{processes}.log"
                with worker(processes, log):
                    run_sagas(make_pets(30))  # warm-up
                    rate, _ = run_sagas(make_pets(args.sagas))
                    _, paced = run_sagas(make_pets(args.sagas // 2), rate=rate / 2)
                figures = summary(paced)
                label = f"{rows:>7,} rows, {processes} worker process{'es' * (processes > 1)}"
                results[label] = (f"{rate:6.1f} sagas/s; at half rate p50 "
                                  f"{figures['p50'] * 1000:.0f} ms, p99 "
                                  f"{figures['p99'] * 1000:.0f} ms")
                print(label, results[label], flush=True)
    report(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
