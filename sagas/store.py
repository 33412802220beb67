"""Where a saga's state and step log are kept: the `sagas` and `saga_steps` tables.

The engine locks a saga's row, asks the state machine, and saves its decision here: the
new state, the step log's entries, the transaction's outbox messages (the next command
among them) and the confirmation of the command the delivery took. The common case, a
step answered, is one statement; statements are built once, so a step's transaction runs
no ORM flush.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, fields
from functools import cache
from typing import Any

from sqlalchemy import Insert, Update, bindparam, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models import outbox
from models.db import utcnow
from models.saga import IN_FLIGHT, Saga, SagaStep
from sagas.machine import (
    Attempt,
    Closed,
    Command,
    Decision,
    FollowUp,
    Outcome,
    SagaState,
)

SAGAS, STEPS = Saga.__table__, SagaStep.__table__
STATE = tuple(field.name for field in fields(SagaState))
LOGGED = tuple(field.name for field in fields(Attempt))
_SELECT = select(*(SAGAS.c[name] for name in STATE))
_LOCK = _SELECT.where(SAGAS.c.id == bindparam("saga_id")).with_for_update(key_share=True)


def lock(connection: Connection, saga_id: uuid.UUID) -> SagaState | None:
    """The saga's state, its row locked until the transaction ends; None if there is none."""
    row = connection.execute(_LOCK, {"saga_id": saga_id}).one_or_none()
    return None if row is None else SagaState(**row._mapping)


def lock_overdue(connection: Connection, limit: int,
                 versions: list[tuple[str, str]]) -> list[SagaState]:
    """Sagas in flight past their deadline on one of these (kind, version) definitions (or
    on none recorded), locked; those locked by others are skipped."""
    runnable = or_(SAGAS.c.definition_version.is_(None),
                   tuple_(SAGAS.c.kind, SAGAS.c.definition_version).in_(versions))
    rows = connection.execute(
        _SELECT.where(SAGAS.c.status.in_(IN_FLIGHT), SAGAS.c.deadline_at < utcnow(), runnable)
        .order_by(SAGAS.c.deadline_at).limit(limit)
        .with_for_update(skip_locked=True, key_share=True))
    return [SagaState(**row._mapping) for row in rows]


def overdue_elsewhere(connection: Connection,
                      versions: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """(kind, version, how many) of the sagas in flight past their deadline on definitions
    other than these: stranded, until a deployment that has theirs runs."""
    runnable = tuple_(SAGAS.c.kind, SAGAS.c.definition_version).in_(versions)
    return [tuple(row) for row in connection.execute(
        select(SAGAS.c.kind, SAGAS.c.definition_version, func.count())
        .where(SAGAS.c.status.in_(IN_FLIGHT), SAGAS.c.deadline_at < utcnow(),
               SAGAS.c.definition_version.is_not(None), ~runnable)
        .group_by(SAGAS.c.kind, SAGAS.c.definition_version))]


def create(session: Session, decision: Decision, **columns: Any) -> None:
    """Store a new saga, with its first command; `columns` are those the engine never
    changes (who started it, with which idempotency key)."""
    messages = _messages(session, decision)
    params = asdict(decision.saga) | columns | {"version": 1,
                                                "outbox": outbox.as_json(messages)}
    session.connection().execute(_create(), params)


def save(session: Session, decision: Decision | None, *, before: SagaState | None = None,
         confirm: uuid.UUID | None = None) -> None:
    """Save what the state machine decided, with the transaction's outbox messages, and
    confirm the command `confirm` names as taken; with no decision, only confirm it.

    A changed state is a new version. A commit that leaves the saga in flight does not
    wait for the disk; the commit that ends it does. PostgreSQL's log is one sequence, so
    that commit takes every earlier step's with it. A database crash may lose the last few
    steps' commits, each step's work with its saga state: the saga is back at an earlier
    step, the commands of the lost steps find it not waiting for them, and the sweeper
    dispatches its step again. A saga is reported ended only once that is on disk.
    """
    connection = session.connection()
    if decision is None or decision.saga == before:
        if decision is not None:
            _write_log(connection, decision, logged=None)
        if confirm is not None:  # lost in a crash, it is sent again and ignored again
            connection.execute(_CONFIRM_ONLY, {"confirmed": confirm})
        return
    saga = decision.saga
    entry = next((e for e in decision.effects if isinstance(e, Attempt)), None)
    _write_log(connection, decision, logged=entry)
    messages = _messages(session, decision)
    params = {f"new_{name}": value for name, value in asdict(saga).items()} | {
        "saga_id": saga.id, "synchronous_commit": "off" if saga.status in IN_FLIGHT else "on"}
    if entry is not None:
        params |= {"log_saga_id": saga.id, **{f"log_{k}": v for k, v in asdict(entry).items()}}
    if messages:
        params["outbox"] = outbox.as_json(messages)
    if confirm is not None:
        params["confirmed"] = confirm
    connection.execute(_save(logging=entry is not None, writing=bool(messages),
                             confirming=confirm is not None), params)


def _write_log(connection: Connection, decision: Decision, *, logged: Attempt | None) -> None:
    """The step log's changes that are statements of their own (after a retry or a crash,
    not on a step's first answer): attempts closed, an earlier attempt's outcome."""
    saga_id = decision.saga.id
    for effect in decision.effects:
        if isinstance(effect, Closed):
            connection.execute(
                _attempts_of(saga_id, effect.step_index, effect.phase)
                .where(STEPS.c.status == "running")
                .values(status=effect.status, error=effect.error, ended_at=effect.ended_at))
        elif isinstance(effect, Outcome):
            # Attempt numbers start again when an operator retries the step: the newest
            # entry with this number is this attempt's.
            newest = (select(func.max(STEPS.c.id))
                      .where(*_of_step(saga_id, effect.step_index, effect.phase),
                             STEPS.c.attempt == effect.attempt).scalar_subquery())
            connection.execute(update(STEPS).where(STEPS.c.id == newest).values(
                status=effect.status, error=effect.error, ended_at=effect.ended_at))
        elif isinstance(effect, Attempt) and effect is not logged:
            connection.execute(insert(STEPS), {"saga_id": saga_id, **asdict(effect)})


def _of_step(saga_id: uuid.UUID, index: int, phase: str) -> tuple[Any, ...]:
    return (STEPS.c.saga_id == saga_id, STEPS.c.step_index == index, STEPS.c.phase == phase)


def _attempts_of(saga_id: uuid.UUID, index: int, phase: str) -> Update:
    return update(STEPS).where(*_of_step(saga_id, index, phase))


def _messages(session: Session, decision: Decision) -> list[outbox.Message]:
    """The transaction's outbox messages, with the decision's own: its follow-up, then the
    saga's next command, last."""
    saga = decision.saga
    for effect in decision.effects:
        if isinstance(effect, FollowUp):
            outbox.send_task(session, effect.task, saga_id=str(saga.id), data=saga.payload)
    for effect in decision.effects:
        if isinstance(effect, Command):
            outbox.send_command(session, effect.task, saga_id=str(saga.id), step=effect.step,
                                phase=effect.phase)
    return outbox.take_unwritten(session)


@cache
def _save(*, logging: bool, writing: bool, confirming: bool) -> Update:
    """One statement for a saga's new state, a new attempt in its step log, the
    transaction's outbox messages and the delivery's confirmation."""
    statement = (
        update(SAGAS).where(SAGAS.c.id == bindparam("saga_id"))
        .values({**{name: bindparam(f"new_{name}") for name in STATE if name != "id"},
                 "version": SAGAS.c.version + 1, "updated_at": func.now()})
        # SET LOCAL in the same round trip: whether the transaction's commit waits.
        .returning(func.set_config("synchronous_commit", bindparam("synchronous_commit"), True)))
    if logging:
        entry = insert(STEPS).values(
            {name: bindparam(f"log_{name}") for name in ("saga_id", *LOGGED)})
        statement = statement.add_cte(entry.cte("logged"))
    if writing:
        statement = statement.add_cte(outbox.WRITE_FROM_JSON.cte("written"))
    if confirming:
        statement = statement.add_cte(outbox.CONFIRM.cte("confirmed"))
    return statement


# A delivery the saga does not wait for: its command confirmed, the commit not waiting.
_CONFIRM_ONLY = select(func.set_config("synchronous_commit", "off", True)).add_cte(
    outbox.CONFIRM.cte("confirmed"))


@cache
def _create() -> Insert:
    # The clock stated here: a statement with a CTE gets no Python-side column defaults.
    return (insert(SAGAS).values(created_at=func.now(), updated_at=func.now())
            .add_cte(outbox.WRITE_FROM_JSON.cte("written")))
