"""`petstore prune`: old ended sagas and old sent messages go; nothing in flight does."""

from __future__ import annotations

import uuid
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select, update

from models.db import unit_of_work, utcnow
from models.outbox import OutboxMessage
from models.saga import Saga, SagaStep
from petstore.cli import cli
from sagas import engine
from sagas.orders import create_order


def a_saga(status: str, ended_days_ago: float | None) -> uuid.UUID:
    with unit_of_work() as session:
        saga = engine.start(session, create_order, {"order_id": 0, "pet_id": 0})
        session.add(SagaStep(saga_id=saga.id, step="reserve_pet", step_index=0,
                             phase="action", attempt=1, status="succeeded",
                             task_name="pets.reserve_pet"))
        ended_at = None if ended_days_ago is None else utcnow() - timedelta(days=ended_days_ago)
        session.execute(update(Saga).where(Saga.id == saga.id).values(
            status=status, created_at=utcnow() - timedelta(days=60), ended_at=ended_at))
        return saga.id


def exists(saga_id: uuid.UUID) -> bool:
    with unit_of_work() as session:
        return session.get(Saga, saga_id) is not None


def test_prune_deletes_old_ended_sagas_with_their_log_and_keeps_the_rest():
    old_done = a_saga("completed", ended_days_ago=40)
    old_undone = a_saga("compensated", ended_days_ago=40)
    recent = a_saga("completed", ended_days_ago=1)
    in_flight = a_saga("running", ended_days_ago=None)
    with unit_of_work() as session:  # this test's outbox rows were sent long ago
        session.execute(update(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].as_string().in_(
                [str(old_done), str(recent)])).values(sent_at=utcnow() - timedelta(days=40)))

    result = CliRunner().invoke(cli, ["prune", "--older-than-days", "30"])

    assert result.exit_code == 0, result.output
    assert "deleted" in result.output
    assert not exists(old_done) and not exists(old_undone)
    assert exists(recent) and exists(in_flight)
    with unit_of_work() as session:
        steps = session.scalar(select(func.count()).select_from(SagaStep).where(
            SagaStep.saga_id.in_([old_done, old_undone])))
        kept = session.scalar(select(func.count()).select_from(SagaStep).where(
            SagaStep.saga_id == recent))
        sent = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].as_string() == str(old_done)))
    assert steps == 0
    assert kept == 1  # the recent saga's log stays
    assert sent == 0
    with unit_of_work() as session:  # not left for a later test's worker to run
        engine.abort(session, str(in_flight))
