"""The saga log: one row per saga (its state) and one per step attempt (its story).

Shared infrastructure like the outbox: the engine in `sagas/` is the only writer.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base, utcnow

RUNNING, COMPLETED, COMPENSATING, COMPENSATED, REFUSED, FAILED = (
    "running", "completed", "compensating", "compensated", "refused", "failed")
SAGA_STATUSES = (RUNNING, COMPLETED, COMPENSATING, COMPENSATED, REFUSED, FAILED)
# A saga that ended: completed; compensated (steps did work, undone); refused at its first
# step, before any did work; failed (needs an operator).
ENDED = (COMPLETED, COMPENSATED, REFUSED, FAILED)
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
    # The worker host that ran the attempt (Celery's hostname); None before revision 0008.
    worker: Mapped[str | None] = mapped_column(String(200))

    @property
    def took(self) -> timedelta | None:
        """How long the attempt ran; None while it runs."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

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


ANSWERED = ("succeeded", "failed", "refused")  # an attempt that ended with an answer
