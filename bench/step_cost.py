"""What one saga step costs its worker, against the same SQL sent from lower layers.

    .venv/bin/python bench/step_cost.py --steps 300

In one process, with no worker running, `pets.reserve_pet` runs for N create-order sagas
waiting at their first step, three ways taking turns, each committing the same rows and
then publishing its messages and marking them sent, as the outbox relay does:

- the step's task body, through the engine (`sagas.runner`, a SQLAlchemy Session);
- the same SQL, hand-written, through a SQLAlchemy Connection;
- the same SQL on a bare psycopg connection.

The published commands only queue up: nobody takes them. The figures say how much of a
step is the engine and SQLAlchemy, and how much the database and the broker.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, servers
from bench.sagas import make_pets, start_saga

Execute = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]

LOCK = "SELECT payload FROM sagas WHERE id = %(saga)s FOR UPDATE"
RESERVE = ("UPDATE pets SET status = 'pending', order_id = %(order)s, version = version + 1 "
           "WHERE id = %(pet)s AND status = 'available' RETURNING version")
MESSAGES = ("INSERT INTO outbox (message_id, kind, name, payload, created_at, attempts) VALUES "
            "(gen_random_uuid(), 'event', 'PET_RESERVED', CAST(%(event)s AS jsonb), now(), 0), "
            "(gen_random_uuid(), 'task', 'orders.place_order', CAST(%(command)s AS jsonb), "
            "now(), 0) RETURNING message_id, kind, name, payload")
# The step's log entry, the saga's new state and the commit's wait, in one statement.
ADVANCE = ("WITH logged AS (INSERT INTO saga_steps (saga_id, step, step_index, phase, attempt, "
           "status, task_name, task_id, started_at, ended_at) VALUES (%(saga)s, 'reserve_pet', "
           "0, 'action', 1, 'succeeded', 'pets.reserve_pet', %(task)s, now(), now())) "
           "UPDATE sagas SET current_step = 1, attempt = 0, sweeps = 0, "
           "payload = CAST(%(payload)s AS jsonb), version = version + 2, "
           "deadline_at = %(deadline)s, updated_at = now() WHERE id = %(saga)s "
           "RETURNING set_config('synchronous_commit', 'off', true)")
MARK = ("UPDATE outbox SET sent_at = now() WHERE message_id = ANY(%(ids)s) "
        "AND sent_at IS NULL")


def reserve_by_hand(execute: Execute, mark: Execute, saga_id: uuid.UUID) -> None:
    """The engine's statements for this step, in one transaction (`execute`'s), then the
    relay's publish and its autocommit mark."""
    from models.db import utcnow
    from models.outbox import Message
    from workers.relay import _publish

    payload = execute(LOCK, {"saga": saga_id})[0][0]
    pet, order = payload["pet_id"], payload["order_id"]
    version = execute(RESERVE, {"order": order, "pet": pet})[0][0]
    rows = execute(MESSAGES, {
        "event": json.dumps({"pet_id": pet, "status": "pending", "version": version}),
        "command": json.dumps({"saga_id": str(saga_id), "step": "place_order",
                               "phase": "action"})})
    execute(ADVANCE, {"saga": saga_id, "payload": json.dumps({**payload, "pet_version": version}),
                      "deadline": utcnow() + timedelta(seconds=30), "task": str(uuid.uuid4())})
    execute("COMMIT", {})
    sent, _ = _publish([Message(k, n, p, m) for m, k, n, p in rows])
    mark(MARK, {"ids": sent})


def through_sqlalchemy() -> Callable[[uuid.UUID], None]:
    from sqlalchemy import text

    from models.db import bookkeeping_engine, engine

    def run(connection: Any, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        if sql == "COMMIT":
            connection.commit()
            return []
        result = connection.execute(text(re.sub(r"%\((\w+)\)s", r":\1", sql)), params)
        return result.all() if result.returns_rows else []

    def step(saga_id: uuid.UUID) -> None:
        with engine().connect() as work, bookkeeping_engine().connect() as bookkeeping:
            reserve_by_hand(lambda sql, params: run(work, sql, params),
                            lambda sql, params: run(bookkeeping, sql, params), saga_id)

    return step


def through_psycopg(url: str) -> Callable[[uuid.UUID], None]:
    import psycopg

    work = psycopg.connect(url)
    bookkeeping = psycopg.connect(url, autocommit=True)

    def run(connection: psycopg.Connection, sql: str, params: dict[str, Any]) -> list:
        if sql == "COMMIT":
            connection.commit()
            return []
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def step(saga_id: uuid.UUID) -> None:
        reserve_by_hand(lambda sql, params: run(work, sql, params),
                        lambda sql, params: run(bookkeeping, sql, params), saga_id)

    return step


def through_the_engine(saga_id: uuid.UUID) -> None:
    from workers.pets import reserve_pet

    reserve_pet.run(str(saga_id), "reserve_pet", "action")


def median_ms(ways: dict[str, Callable[[uuid.UUID], None]], count: int) -> dict[str, float]:
    """Each way's median milliseconds over `count` fresh sagas of its own, the ways taking
    turns step by step (so that a burst of the machine's other work slows them alike);
    every saga must advance."""
    from sqlalchemy import func, select

    from models.db import unit_of_work
    from models.saga import Saga

    run = uuid.uuid4().hex
    sagas = {name: [start_saga(pet_id, run) for pet_id in make_pets(count)] for name in ways}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(count):
        for name, step in ways.items():
            started = time.perf_counter()
            step(sagas[name][i])
            times[name].append(time.perf_counter() - started)
    everyone = [saga_id for started in sagas.values() for saga_id in started]
    with unit_of_work() as session:
        advanced = session.scalar(select(func.count()).where(
            Saga.id.in_(everyone), Saga.current_step == 1))
    if advanced != len(everyone):
        raise RuntimeError(f"only {advanced} of {len(everyone)} sagas advanced")
    return {name: 1000 * statistics.median(spent) for name, spent in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with servers():
        from models.db import check_connections_before_use
        from petstore.settings import get_settings
        from workers import relay  # noqa: F401  (sends each saga's first command on commit)

        check_connections_before_use(False)  # as in a worker process

        url = get_settings().database_url.replace("postgresql+psycopg", "postgresql")
        ways = {"the engine": through_the_engine,
                "the same SQL through a SQLAlchemy Connection": through_sqlalchemy(),
                "the same SQL on psycopg": through_psycopg(url)}
        median_ms(ways, 30)  # warm-up: caches, prepared statements, connections
        figures = median_ms(ways, args.steps)
    engine_ms = figures["the engine"]
    report({"steps": args.steps,
            **{f"{name}, median ms": round(ms, 2) for name, ms in figures.items()},
            **{f"{name} / the engine": round(ms / engine_ms, 3)
               for name, ms in figures.items() if ms != engine_ms}}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
