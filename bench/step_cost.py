"""What one saga step costs its worker, against the same SQL sent from lower layers.

    .venv/bin/python bench/step_cost.py --steps 300

In one process, with no worker running, `pets.reserve_pet` runs for N create-order sagas
waiting at their first step, three ways taking turns, each taking the saga's first command
(acting on the saga's state the command carries, confirming it, saving the saga only if it
is still at the command's version), committing the same rows and then publishing its
messages, as the outbox relay does:

- the step's task body, through the engine (`sagas.runner`, a SQLAlchemy Session);
- the same SQL, hand-written, through a SQLAlchemy Connection;
- the same SQL on a bare psycopg connection.

The published commands only queue up: nobody takes them. The figures say how much of a
step is the engine and SQLAlchemy, and how much the database and the broker.

Then, for a few create-order sagas run to completion the same way (each step's task body
taking the command its saga sent), what starting the saga and each step send to the
database: statements (BEGIN and COMMIT aside), those that lock a row (`FOR UPDATE`),
commits that write, and of those the ones that wait for the disk (`synchronous_commit`).
"""

from __future__ import annotations

import argparse
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, servers
from bench.sagas import make_pets, start_saga

Execute = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
# (the saga, the command the step took and the saga's state it carries)
Step = Callable[[uuid.UUID, uuid.UUID, dict[str, Any]], None]

RESERVE = ("UPDATE pets SET status = 'pending', order_id = %(order)s, version = version + 1 "
           "WHERE id = %(pet)s AND status = 'available' RETURNING version")
# The step's log entry, its messages (the event nobody hears stored as sent), the
# confirmation of the command it took, the saga's new state (if it is still at the
# command's version and the command was not taken before) and the commit's wait: one
# statement.
ADVANCE = ("WITH logged AS (INSERT INTO saga_steps (saga_id, step, step_index, phase, attempt, "
           "status, task_name, task_id, started_at, ended_at) VALUES (%(saga)s, 'reserve_pet', "
           "0, 'action', 1, 'succeeded', 'pets.reserve_pet', %(taken)s, now(), now())), "
           "written AS (INSERT INTO outbox (message_id, kind, name, payload, sent_at, "
           "created_at, attempts) VALUES (%(event_id)s, 'event', 'PET_RESERVED', "
           "CAST(%(event)s AS jsonb), now(), now(), 0), (%(command_id)s, 'command', "
           "'orders.place_order', CAST(%(command)s AS jsonb), NULL, now(), 0)), "
           "confirmed AS (UPDATE outbox SET sent_at = now() WHERE message_id = %(taken)s "
           "AND sent_at IS NULL RETURNING id) "
           "UPDATE sagas SET current_step = 1, attempt = 0, sweeps = 0, "
           "payload = CAST(%(payload)s AS jsonb), version = version + 1, "
           "deadline_at = %(deadline)s, updated_at = now() WHERE id = %(saga)s "
           "AND version = %(version)s AND EXISTS (SELECT FROM confirmed) "
           "RETURNING set_config('synchronous_commit', 'off', true)")


def reserve_by_hand(execute: Execute, saga_id: uuid.UUID, taken: uuid.UUID,
                    sent: dict[str, Any]) -> None:
    """The engine's statements for this step, in one transaction (`execute`'s), then the
    relay's publish; the command `taken` is the one this step was sent, with `sent`."""
    from models.db import utcnow
    from models.outbox import Message
    from workers.relay import _publish

    payload = sent["payload"]
    pet, order = payload["pet_id"], payload["order_id"]
    version = execute(RESERVE, {"order": order, "pet": pet})[0][0]
    event = Message("event", "PET_RESERVED", {"pet_id": pet, "status": "pending",
                                              "version": version})
    payload = {**payload, "pet_version": version}
    command = Message("command", "orders.place_order", {
        "saga_id": str(saga_id), "step": "place_order", "phase": "action",
        "sent": {**sent, "payload": payload, "current_step": 1, "version": sent["version"] + 1}})
    execute(ADVANCE, {"saga": saga_id, "payload": json.dumps(payload),
                      "version": sent["version"],
                      "deadline": utcnow() + timedelta(seconds=30), "taken": taken,
                      "event_id": event.message_id, "event": json.dumps(event.payload),
                      "command_id": command.message_id, "command": json.dumps(command.payload)})
    execute("COMMIT", {})
    _publish([event, command])


def through_sqlalchemy() -> Step:
    from sqlalchemy import text

    from models.db import engine

    def run(connection: Any, sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        if sql == "COMMIT":
            connection.commit()
            return []
        result = connection.execute(text(re.sub(r"%\((\w+)\)s", r":\1", sql)), params)
        return result.all() if result.returns_rows else []

    def step(saga_id: uuid.UUID, taken: uuid.UUID, sent: dict[str, Any]) -> None:
        with engine().connect() as work:
            reserve_by_hand(lambda sql, params: run(work, sql, params), saga_id, taken, sent)

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

    def step(saga_id: uuid.UUID, taken: uuid.UUID, sent: dict[str, Any]) -> None:
        reserve_by_hand(lambda sql, params: run(work, sql, params), saga_id, taken, sent)

    return step


def through_the_engine(saga_id: uuid.UUID, taken: uuid.UUID, sent: dict[str, Any]) -> None:
    from workers.pets import reserve_pet

    reserve_pet.push_request(id=str(taken), retries=0)  # as a worker runs the command it took
    try:
        reserve_pet.run(str(saga_id), "reserve_pet", "action", sent=sent)
    finally:
        reserve_pet.pop_request()


def first_command(saga_id: uuid.UUID) -> tuple[uuid.UUID, dict[str, Any]]:
    """The message id of the command that starting the saga sent (its first step's), and
    the saga's state it carries."""
    from sqlalchemy import select

    from models.db import unit_of_work
    from models.outbox import COMMAND, OutboxMessage

    with unit_of_work() as session:
        command = session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].astext == str(saga_id),
            OutboxMessage.kind == COMMAND)).one()
        return command.message_id, command.payload["sent"]


def median_ms(ways: dict[str, Step], count: int) -> dict[str, float]:
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
            saga_id = sagas[name][i]
            taken, sent = first_command(saga_id)
            started = time.perf_counter()
            step(saga_id, taken, sent)
            times[name].append(time.perf_counter() - started)
    everyone = [saga_id for started in sagas.values() for saga_id in started]
    with unit_of_work() as session:
        advanced = session.scalar(select(func.count()).where(
            Saga.id.in_(everyone), Saga.current_step == 1))
    if advanced != len(everyone):
        raise RuntimeError(f"only {advanced} of {len(everyone)} sagas advanced")
    return {name: 1000 * statistics.median(spent) for name, spent in times.items()}


@dataclass
class Sent:
    """What some work sent to the database."""

    statements: int = 0
    locking: int = 0  # statements that lock rows: SELECT ... FOR UPDATE
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
        sent.locking += "FOR UPDATE" in statement

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


def newest_command(saga_id: uuid.UUID) -> tuple[uuid.UUID, str, dict[str, Any]]:
    """The saga's newest command: its message id, its task and the saga's state it carries."""
    from sqlalchemy import select

    from models.db import unit_of_work
    from models.outbox import COMMAND, OutboxMessage

    with unit_of_work() as session:
        command = session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].astext == str(saga_id),
            OutboxMessage.kind == COMMAND).order_by(OutboxMessage.id.desc()).limit(1)).one()
        return command.message_id, command.name, command.payload


def sent_per_step(count: int) -> dict[str, Sent]:
    """What starting a create-order saga and each of its steps sent, summed over `count`
    sagas run to completion, each step's task body taking its saga's newest command."""
    import workers.inventory
    import workers.orders
    import workers.pets  # noqa: F401  (the steps' tasks)
    from models.db import unit_of_work
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
            task = app.tasks[name]
            task.push_request(id=str(taken), retries=0)  # as a worker runs the command
            try:
                with counted() as sent:
                    task.run(command["saga_id"], command["step"], command["phase"],
                             sent=command["sent"])
            finally:
                task.pop_request()
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
