"""The migrations build the schema the models describe, and undo it."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from models.db import Base, dispose
from models.migrate import alembic_config


@pytest.fixture
def scratch_database(monkeypatch):
    url = make_url(os.environ["DATABASE_URL"])
    name = f"petstore_migrations_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    scratch = url.set(database=name).render_as_string(False)
    monkeypatch.setenv("DATABASE_URL", scratch)
    from common.settings import get_settings

    get_settings.cache_clear()
    dispose()
    yield scratch
    dispose()
    get_settings.cache_clear()
    monkeypatch.undo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_upgrade_matches_the_models_and_downgrade_removes_everything(scratch_database):
    command.upgrade(alembic_config(), "head")
    engine = create_engine(scratch_database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []

    command.downgrade(alembic_config(), "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()


def test_sagas_refused_at_their_first_step_are_refused_after_the_upgrade(scratch_database):
    command.upgrade(alembic_config(), "0006")
    engine = create_engine(scratch_database)
    # (current step, error code): refused at the first step; refused later, with steps
    # undone; given up at the first step with no refusal.
    ended = {"refused first": (0, "PetNotAvailable"), "refused later": (1, "OrderIdTaken"),
             "given up first": (0, None)}
    with engine.begin() as connection:
        for name, (step, code) in ended.items():
            connection.execute(text(
                "INSERT INTO sagas (id, kind, status, payload, current_step, phase, attempt, "
                "sweeps, version, error, error_code, created_at, updated_at) VALUES "
                "(:id, 'create_order', 'compensated', '{}', :step, 'action', 1, 0, 3, :name, "
                ":code, now(), now())"), {"id": uuid.uuid4(), "step": step, "name": name,
                                          "code": code})
    command.upgrade(alembic_config(), "head")
    with engine.connect() as connection:
        statuses = dict(connection.execute(text("SELECT error, status FROM sagas")).all())
    assert statuses == {"refused first": "refused", "refused later": "compensated",
                        "given up first": "compensated"}
    command.downgrade(alembic_config(), "0006")
    with engine.connect() as connection:
        assert set(connection.execute(text("SELECT status FROM sagas")).scalars()) == {
            "compensated"}
    engine.dispose()


def test_the_saga_counters_start_from_the_rows_there_are(scratch_database):
    command.upgrade(alembic_config(), "0008")
    engine = create_engine(scratch_database)
    with engine.begin() as connection:
        for status in ("completed", "completed", "running"):
            saga_id = uuid.uuid4()
            connection.execute(text(
                "INSERT INTO sagas (id, kind, status, payload, current_step, phase, attempt, "
                "sweeps, version, created_at, updated_at) VALUES (:id, 'trip', :status, '{}', "
                "0, 'action', 1, 0, 1, now(), now())"), {"id": saga_id, "status": status})
            connection.execute(text(
                "INSERT INTO saga_steps (saga_id, step, step_index, phase, attempt, status, "
                "task_name, started_at, ended_at) VALUES (:id, 'book', 0, 'action', 1, "
                "'succeeded', 'hotels.book', now() - interval '30 milliseconds', now())"),
                {"id": saga_id})
    command.upgrade(alembic_config(), "head")
    assert counted(engine) == ({"completed": 2, "running": 1}, {"started": 3, "completed": 2},
                               [(3, 3)])  # 30 ms: above 0.025 s, at most 0.05 s: bucket 3
    # Back to 0009's sharded counters, which go on counting.
    command.downgrade(alembic_config(), "0009")
    with engine.begin() as connection:
        connection.execute(text("UPDATE sagas SET status = 'failed' WHERE status = 'running'"))
    assert counted(engine)[:2] == ({"completed": 2, "running": 0, "failed": 1},
                                   {"started": 3, "completed": 2, "failed": 1})
    command.downgrade(alembic_config(), "0008")
    assert not {"saga_counts", "saga_totals", "step_totals"} & set(
        inspect(engine).get_table_names())
    engine.dispose()


def counted(engine) -> tuple[dict[str, int], dict[str, int], list[tuple[int, int]]]:
    """The trip sagas' counts by status, their totals by event, and hotels.book's attempts
    by duration bucket."""
    with engine.connect() as connection:
        counts = dict(connection.execute(text(
            "SELECT status, sum(n) FROM saga_counts WHERE kind = 'trip' GROUP BY status")).all())
        totals = dict(connection.execute(text(
            "SELECT event, sum(n) FROM saga_totals WHERE kind = 'trip' GROUP BY event")).all())
        steps = connection.execute(text(
            "SELECT bucket, sum(n) FROM step_totals WHERE task_name = 'hotels.book' "
            "GROUP BY bucket")).all()
    return counts, totals, [tuple(row) for row in steps]
