"""The saga log: one row per saga (its state) and one per step attempt (its story).

Shared infrastructure like the outbox: the engine in `sagas/` is the only writer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Insert,
    String,
    Text,
    Update,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import outbox
from models.db import Base, utcnow

RUNNING, COMPLETED, COMPENSATING, COMPENSATED, FAILED = (
    "running", "completed", "compensating", "compensated", "failed")
SAGA_STATUSES = (RUNNING, COMPLETED, COMPENSATING, COMPENSATED, FAILED)
IN_FLIGHT = (RUNNING, COMPENSATING)
ACTION, COMPENSATION = "action", "compensation"


class SagaStep(Base):
    """One attempt at one step: dispatched, then succeeded, failed or lost."""

    __tablename__ = "saga_steps"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    saga_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sagas.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(100))
    step_index: Mapped[int]
    phase: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    task_name: Mapped[str] = mapped_column(String(100))
    task_id: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_saga_steps_saga_id", "saga_id", "id"),
        # An outcome is the step's idempotency key: one per saga, step and phase.
        Index("uq_saga_steps_outcome", "saga_id", "step_index", "phase", unique=True,
              postgresql_where=text("status IN ('succeeded', 'refused')")),
    )


class Saga(Base):
    __tablename__ = "sagas"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(50))
    # The fingerprint of the kind's definition the saga started with (SagaDefinition.version).
    definition_version: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    current_step: Mapped[int] = mapped_column(default=0)
    phase: Mapped[str] = mapped_column(String(16), default=ACTION)
    # Deliveries begun of the current step and phase; the retry policy caps it.
    attempt: Mapped[int] = mapped_column(default=0)
    # Times the sweeper dispatched the current step again; the retry policy caps it too.
    sweeps: Mapped[int] = mapped_column(default=0)
    version: Mapped[int] = mapped_column(default=1)
    error: Mapped[str | None] = mapped_column(Text)
    # The business reason a step refused (an error's name), for callers to act on.
    error_code: Mapped[str | None] = mapped_column(String(100))
    # When the current step is overdue: past it, the sweeper dispatches it again.
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[int | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    steps: Mapped[list[SagaStep]] = relationship(order_by=SagaStep.id, lazy="raise")

    __table_args__ = (
        Index("ix_sagas_overdue", "deadline_at",
              postgresql_where=text(f"status IN {IN_FLIGHT}")),
        Index("ix_sagas_status_kind", "status", "kind", "created_at"),
        Index("uq_sagas_idempotency", "started_by", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
    )


# The engine reads and writes a saga's state as one row under its lock, with statements
# built once: a step's transaction runs no ORM flush for it.
SAGAS, STEPS = Saga.__table__, SagaStep.__table__
CHANGING = ("status", "payload", "current_step", "phase", "attempt", "sweeps", "version",
            "error", "error_code", "deadline_at", "ended_at")
LOGGED = ("step", "step_index", "phase", "attempt", "status", "task_name", "task_id", "error",
          "started_at", "ended_at")
_STATE_COLUMNS = (SAGAS.c.id, SAGAS.c.kind, *(SAGAS.c[name] for name in CHANGING))


@dataclass
class SagaState:
    """A saga's state, as the engine holds it while the saga's row is locked."""

    id: uuid.UUID
    kind: str
    status: str = RUNNING
    payload: dict[str, Any] = field(default_factory=dict)
    current_step: int = 0
    phase: str = ACTION
    attempt: int = 0
    sweeps: int = 0
    version: int = 0
    error: str | None = None
    error_code: str | None = None
    deadline_at: datetime | None = None
    ended_at: datetime | None = None
    # An attempt for the step log (its LOGGED columns), written with the state.
    new_attempt: dict[str, Any] | None = None
    # The task of the current step's command, to send with the state once it is final.
    command: str | None = None


# What a command carries of its saga's state, so that its step need not read it.
SENT = ("kind", "status", "payload", "current_step", "phase", "attempt", "sweeps", "version",
        "error", "error_code")


def as_sent(saga: SagaState) -> dict[str, Any]:
    return {name: getattr(saga, name) for name in SENT}


def from_sent(saga_id: uuid.UUID, sent: dict[str, Any]) -> SagaState:
    """The saga as its command was sent; its deadline is the step's to set again."""
    return SagaState(id=saga_id, **{name: sent[name] for name in SENT})


@cache
def _save(*, logging: bool, writing: bool, confirming: bool, expecting: bool) -> Update:
    """The statement that saves a saga's state, with what else its transaction writes: the
    attempt's log entry, the transaction's outbox messages, the delivery's confirmation.
    `expecting`: only if the saga is still at the version expected and the delivery's
    command was not taken before."""
    statement = (
        update(SAGAS).where(SAGAS.c.id == bindparam("saga_id"))
        .values({**{name: bindparam(f"new_{name}") for name in CHANGING},
                 "updated_at": func.now()})
        # SET LOCAL in the same round trip: whether the transaction's commit waits.
        .returning(func.set_config("synchronous_commit", bindparam("synchronous_commit"), True)))
    if logging:
        entry = insert(STEPS).values(
            {name: bindparam(f"log_{name}") for name in ("saga_id", *LOGGED)})
        statement = statement.add_cte(entry.cte("logged"))
    if writing:
        statement = statement.add_cte(outbox.WRITE_FROM_JSON.cte("written"))
    if confirming:
        confirmed = outbox.CONFIRM.returning(outbox.OUTBOX.c.id).cte("confirmed")
        statement = statement.add_cte(confirmed)
        if expecting:
            statement = statement.where(SAGAS.c.version == bindparam("expected_version"),
                                        select(confirmed.c.id).exists())
    return statement


STATE = select(*_STATE_COLUMNS)
LOCK = STATE.where(SAGAS.c.id == bindparam("saga_id")).with_for_update()


def lock(connection: Connection, saga_id: uuid.UUID) -> SagaState | None:
    """The saga's state, its row locked until the transaction ends; None if there is none."""
    row = connection.execute(LOCK, {"saga_id": saga_id}).one_or_none()
    return None if row is None else SagaState(**row._mapping)


def lock_overdue(connection: Connection, limit: int) -> list[SagaState]:
    """Sagas in flight past their deadline, locked; those locked by others are skipped."""
    rows = connection.execute(
        STATE.where(SAGAS.c.status.in_(IN_FLIGHT), SAGAS.c.deadline_at < utcnow())
        .order_by(SAGAS.c.deadline_at).limit(limit).with_for_update(skip_locked=True))
    return [SagaState(**row._mapping) for row in rows]


def save(connection: Connection, saga: SagaState, *, wait_for_disk: bool = True,
         messages: list[outbox.Message] | None = None, confirm: uuid.UUID | None = None,
         expected_version: int | None = None) -> bool:
    """Write the saga's state, its new attempt if it has one, these outbox messages and the
    confirmation of the command that `confirm` names, in one statement; with `wait_for_disk`
    False the transaction's commit does not wait for the disk.

    With `expected_version` (and `confirm`) the saga is saved only if it is still at that
    version and that command was not taken before; False when it was not saved (then the
    statement's other writes must roll back)."""
    params = {"saga_id": saga.id, "synchronous_commit": "on" if wait_for_disk else "off",
              **{f"new_{name}": getattr(saga, name) for name in CHANGING}}
    if saga.new_attempt is not None:
        params |= {"log_saga_id": saga.id,
                   **{f"log_{name}": saga.new_attempt[name] for name in LOGGED}}
    if messages:
        params["outbox"] = outbox.as_json(messages)
    if confirm is not None:
        params["confirmed"] = confirm
    if expected_version is not None:
        assert confirm is not None, "a saved state is expected only with its command's id"
        params["expected_version"] = expected_version
    saved = connection.execute(_save(
        logging=saga.new_attempt is not None, writing=bool(messages),
        confirming=confirm is not None, expecting=expected_version is not None), params)
    saga.new_attempt = None
    return saved.first() is not None


@cache
def _create(*, writing: bool) -> Insert:
    # The clock stated here: a statement with a CTE gets no Python-side column defaults.
    statement = insert(SAGAS).values(created_at=func.now(), updated_at=func.now())
    return statement.add_cte(outbox.WRITE_FROM_JSON.cte("written")) if writing else statement


def create(connection: Connection, saga: SagaState, *,
           messages: list[outbox.Message] | None = None, **fields: Any) -> None:
    """Store a new saga and these outbox messages; `fields` are the columns the engine never
    changes."""
    params = {name: getattr(saga, name) for name in ("id", "kind", *CHANGING)} | fields
    if messages:
        params["outbox"] = outbox.as_json(messages)
    connection.execute(_create(writing=bool(messages)), params)
