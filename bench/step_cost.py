"""What one saga step costs its worker, against the same SQL sent from lower layers.

    .venv/bin/python bench/step_cost.py --steps 300

In one process, with no worker running, `pets.reserve_pet` runs for N create-order sagas
waiting at their first step, three ways taking turns, each taking the saga's first command
in one transaction (lock the saga's row, reserve the pet, save the saga's new state with its
step log entry, its messages and the command's confirmation in one statement, commit
without waiting for the disk) and then publishing its messages, as the outbox relay does:

- the step's task body, through the engine (`sagas.engine.run_step`, a SQLAlchemy Session);
- the same SQL, hand-written, through a SQLAlchemy Connection;
- the same SQL on a bare psycopg connection.

The published commands only queue up: nobody takes them. The figures say how much of a
step is the engine and SQLAlchemy, and how much the database and the broker.

Then, for a few create-order sagas run to completion the same way (each step's task body
taking the command its saga sent), what starting the saga and each step send to the
database: statements (BEGIN and COMMIT aside), those that lock a row (`FOR NO KEY UPDATE`),
commits that write, and of those the ones that wait for the disk (`synchronous_commit`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, servers
from bench.sagas import make_pets, start_saga

if TYPE_CHECKING:
    from celery import Task

    from sagas.engine import Work

Execute = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
# (the saga, the command the step took)
Step = Callable[[uuid.UUID, uuid.UUID], None]

STATE = ("id", "kind", "definition_version", "status", "payload", "current_step", "phase",
         "attempt", "sweeps", "error", "error_code", "deadline_at", "ended_at")
LOCK = f"SELECT {', '.join(STATE)} FROM sagas WHERE id = %(saga)s FOR NO KEY UPDATE"
RESERVE = ("UPDATE pets SET status = 'pending', order_id = %(order)s, version = version + 1, "
           "updated_at = %(now)s WHERE id = %(pet)s AND status = 'available' "
           "RETURNING version")
# The step's log entry, the transaction's messages (the event nobody hears stored as sent),
# the confirmation of the command it took, the saga's new state (every column of it, changed
# or not, as the engine writes it) and whether the commit waits for the disk: one statement.
SAVE = ("WITH logged AS (INSERT INTO saga_steps (saga_id, step, step_index, phase, attempt, "
        "status, task_name, task_id, error, started_at, ended_at, worker) VALUES (%(saga)s, "
        "'reserve_pet', 0, 'action', 1, 'succeeded', 'pets.reserve_pet', %(task_id)s, NULL, "
        "%(started)s, %(now)s, 'bench@step_cost')), "
        "written AS (INSERT INTO outbox (message_id, kind, name, payload, sent_at, "
        "created_at, attempts) SELECT m.message_id, m.kind, m.name, m.payload, "
        "CASE WHEN m.sent THEN now() END, now(), 0 FROM jsonb_to_recordset("
        "CAST(%(outbox)s AS jsonb)) AS m(message_id uuid, kind varchar, name varchar, "
        "payload jsonb, sent boolean)), "
        "confirmed AS (UPDATE outbox SET sent_at = now() WHERE message_id = %(taken)s "
        "AND sent_at IS NULL) "
        "UPDATE sagas SET kind = %(kind)s, definition_version = %(definition_version)s, "
        "status = %(status)s, payload = CAST(%(payload)s AS jsonb), current_step = 1, "
        "phase = %(phase)s, attempt = 0, sweeps = 0, version = version + 1, "
        "error = %(error)s, error_code = %(error_code)s, deadline_at = %(deadline)s, "
        "updated_at = now(), ended_at = %(ended_at)s WHERE id = %(saga)s "
        "RETURNING set_config('synchronous_commit', 'off', true)")


def work_of(task: Task) -> Work:
    """A step task's work function, as `workers.steps.saga_step` wrapped it."""
    return inspect.getclosurevars(task.__wrapped__).nonlocals["work"]


def reserve_by_hand(execute: Execute, saga_id: uuid.UUID, taken: uuid.UUID) -> None:
    """The engine's statements for this step, in one transaction (`execute`'s), then the
    relay's publish; `taken` is the command this step was sent."""
    from models.db import utcnow
    from models.outbox import Message, as_json
    from workers.relay import relay_committed

    started = utcnow()
    saga = dict(zip(STATE, execute(LOCK, {"saga": saga_id})[0], strict=True))
    pet, order = saga["payload"]["pet_id"], saga["payload"]["order_id"]
    version = execute(RESERVE, {"order": order, "pet": pet, "now": utcnow()})[0][0]
    messages = [
        Message("event", "PET_RESERVED", {"pet_id": pet, "status": "pending",
                                          "version": version}),
        Message("command", "orders.place_order", {"saga_id": str(saga_id),
                                                  "step": "place_order", "phase": "action"})]
    now = utcnow()
    execute(SAVE, {**saga, "saga": saga_id, "taken": taken, "task_id": str(taken),
                   "started": started, "now": now,
                   "payload": json.dumps({**saga["payload"], "pet_version": version}),
                   "deadline": now + timedelta(seconds=10),  # place_order's timeout
                   "outbox": json.dumps(as_json(messages))})
    execute("COMMIT", {})
    relay_committed(messages)


def through_sqlalchemy() -> Step:
    from sqlalchemy import text

    from models.db import engine

    def run(connection: Any, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        if sql == "COMMIT":
            connection.commit()
            return []
        result = connection.execute(text(re.sub(r"%\((\w+)\)s", r":\1", sql)), params)
        return result.all() if result.returns_rows else []

    def step(saga_id: uuid.UUID, taken: uuid.UUID) -> None:
        with engine().connect() as work:
            reserve_by_hand(lambda sql, params: run(work, sql, params), saga_id, taken)

    return step


def through_psycopg(url: str) -> Step:
    import psycopg

    work = psycopg.connect(url)

    def run(connection: psycopg.Connection, sql: str, params: dict[str, Any]) -> list:
        if sql == "COMMIT":
            connection.commit()
            return []
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def step(saga_id: uuid.UUID, taken: uuid.UUID) -> None:
        reserve_by_hand(lambda sql, params: run(work, sql, params), saga_id, taken)

    return step


def through_the_engine() -> Step:
    from models.db import utcnow
    from sagas.engine import Delivery, run_step
    from workers.pets import reserve_pet

    work = work_of(reserve_pet)

    def step(saga_id: uuid.UUID, taken: uuid.UUID) -> None:
        # As the task does with the command it took: its task id is the message id.
        run_step("pets.reserve_pet", work, Delivery(
            str(saga_id), "reserve_pet", "action", task_id=str(taken), started_at=utcnow(),
            worker="bench@step_cost"))

    return step


def newest_command(saga_id: uuid.UUID) -> tuple[uuid.UUID, str, dict[str, Any]]:
    """The saga's newest command: its message id, its task and its saga, step and phase."""
    from sqlalchemy import select

    from models.db import unit_of_work
    from models.outbox import COMMAND, OutboxMessage

    with unit_of_work() as session:
        command = session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].astext == str(saga_id),
            OutboxMessage.kind == COMMAND).order_by(OutboxMessage.id.desc()).limit(1)).one()
        return command.message_id, command.name, command.payload


def median_ms(ways: dict[str, Step], count: int) -> dict[str, float]:
    """Each way's median milliseconds over `count` fresh sagas of its own, the ways taking
    turns step by step (so that a burst of the machine's other work slows them alike);
    every saga must advance, and every command taken be confirmed."""
    from sqlalchemy import func, select

    from models.db import unit_of_work
    from models.outbox import OutboxMessage
    from models.saga import Saga

    run = uuid.uuid4().hex
    sagas = {name: [start_saga(pet_id, run) for pet_id in make_pets(count)] for name in ways}
    times: dict[str, list[float]] = {name: [] for name in ways}
    taken: list[uuid.UUID] = []
    for i in range(count):
        for name, step in ways.items():
            saga_id = sagas[name][i]
            taken.append(newest_command(saga_id)[0])
            started = time.perf_counter()
            step(saga_id, taken[-1])
            times[name].append(time.perf_counter() - started)
    everyone = [saga_id for started in sagas.values() for saga_id in started]
    with unit_of_work() as session:
        advanced = session.scalar(select(func.count()).where(
            Saga.id.in_(everyone), Saga.current_step == 1))
        confirmed = session.scalar(select(func.count()).where(
            OutboxMessage.message_id.in_(taken), OutboxMessage.sent_at.is_not(None)))
    if advanced != len(everyone) or confirmed != len(taken):
        raise RuntimeError(f"of {len(everyone)} sagas, {advanced} advanced and {confirmed} "
                           "confirmed their command")
    return {name: 1000 * statistics.median(spent) for name, spent in times.items()}


@dataclass
class Sent:
    """What some work sent to the database."""

    statements: int = 0
    locking: int = 0  # statements that lock rows: SELECT ... FOR [NO KEY] UPDATE
    commits: int = 0  # commits of transactions that wrote (a read-only one writes nothing)
    waiting: int = 0  # of those, the ones that waited for the disk


# Asked on the driver's own connection, so that it is not counted.
PROBE = "SELECT current_setting('synchronous_commit'), txid_current_if_assigned() IS NOT NULL"
WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def counted() -> Iterator[Sent]:
    """What every SQLAlchemy engine of this process sends to the database meanwhile."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sent = Sent()

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.statements += 1
        sent.locking += bool(re.search(r"FOR (NO KEY )?UPDATE", statement))

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = cursor.connection
        if raw.autocommit and statement.lstrip().upper().startswith(WRITES):  # a commit
            sent.commits += 1
            sent.waiting += raw.execute("SHOW synchronous_commit").fetchone()[0] != "off"

    def commit(conn) -> None:
        setting, wrote = conn.connection.dbapi_connection.execute(PROBE).fetchone()
        if wrote:
            sent.commits += 1
            sent.waiting += setting != "off"

    hooks = (("before_cursor_execute", before), ("after_cursor_execute", after),
             ("commit", commit))
    for name, hook in hooks:
        event.listen(Engine, name, hook)
    try:
        yield sent
    finally:
        for name, hook in hooks:
            event.remove(Engine, name, hook)


def sent_per_step(count: int) -> dict[str, Sent]:
    """What starting a create-order saga and each of its steps sent, summed over `count`
    sagas run to completion, each step's task body taking its saga's newest command."""
    import workers.inventory
    import workers.orders
    import workers.pets  # noqa: F401  (the steps' tasks)
    from models.db import unit_of_work, utcnow
    from models.order import new_order_id
    from models.saga import COMPLETED, Saga
    from sagas import engine
    from sagas.orders import create_order
    from workers.celery_app import app

    totals: dict[str, Sent] = {}

    def add(what: str, sent: Sent) -> None:
        total = totals.setdefault(what, Sent())
        for name in vars(sent):
            setattr(total, name, getattr(total, name) + getattr(sent, name))

    run = uuid.uuid4().hex
    for pet_id in make_pets(count):
        with unit_of_work() as session:
            order_id = new_order_id(session)  # the gateway's, before the saga starts
        payload = {"order_id": order_id, "pet_id": pet_id, "customer_id": 1, "quantity": 1,
                   "ship_date": None, "bench": run}
        with counted() as sent, unit_of_work() as session:
            saga_id = engine.start(session, create_order, payload).id
        add("starting the saga", sent)
        for step in create_order.steps:
            taken, name, command = newest_command(saga_id)
            work = work_of(app.tasks[name])
            with counted() as sent:  # as the step's task runs the command it took
                engine.run_step(name, work, engine.Delivery(
                    command["saga_id"], command["step"], command["phase"], task_id=str(taken),
                    started_at=utcnow()))
            add(f"{step.name} ({name})", sent)
        with unit_of_work() as session:
            status = session.get(Saga, saga_id).status
        if status != COMPLETED:
            raise RuntimeError(f"saga {saga_id} is {status}, not completed")
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--counted-sagas", type=int, default=20,
                        help="create-order sagas whose statements and commits are counted")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with servers():
        from common.settings import get_settings
        from models.db import check_connections_before_use
        from workers import relay  # noqa: F401  (sends each saga's first command on commit)

        check_connections_before_use(False)  # as in a worker process

        url = get_settings().database_url.replace("postgresql+psycopg", "postgresql")
        ways = {"the engine": through_the_engine(),
                "the same SQL through a SQLAlchemy Connection": through_sqlalchemy(),
                "the same SQL on psycopg": through_psycopg(url)}
        median_ms(ways, 30)  # warm-up: caches, prepared statements, connections
        figures = median_ms(ways, args.steps)
        totals = sent_per_step(args.counted_sagas)
    engine_ms = figures["the engine"]
    per_saga = {f"{what}: statements / locking / commits / waiting for the disk":
                " / ".join(f"{getattr(total, name) / args.counted_sagas:g}"
                           for name in vars(total))
                for what, total in totals.items()}
    report({"steps": args.steps,
            **{f"{name}, median ms": round(ms, 2) for name, ms in figures.items()},
            **{f"{name} / the engine": round(ms / engine_ms, 3)
               for name, ms in figures.items() if ms != engine_ms},
            "counted sagas": args.counted_sagas, **per_saga}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
