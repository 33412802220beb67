"""The migrations build the schema the models describe, and undo it."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
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
