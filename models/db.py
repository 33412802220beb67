"""The engine, the declarative base and the unit of work every local transaction uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import BigInteger, MetaData, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from petstore.settings import get_settings

# Stable constraint names keep Alembic migrations reviewable.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

INT64_MAX = 2**63 - 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {int: BigInteger}


def utcnow() -> datetime:
    return datetime.now(UTC)


@cache
def engine() -> Engine:
    return create_engine(get_settings().database_url, pool_pre_ping=True, pool_size=10)


@cache
def session_factory() -> sessionmaker[Session]:
    return sessionmaker(engine(), expire_on_commit=False)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One local transaction: commits on success, rolls back on any error.

    Messages added with `models.outbox` ride in the same commit, so a change and the
    messages that must follow it are stored together or not at all.
    """
    with session_factory().begin() as session:
        yield session


def dispose() -> None:
    """Forget pooled connections (after a fork, or when settings change in tests)."""
    if engine.cache_info().currsize:
        engine().dispose()
    engine.cache_clear()
    session_factory.cache_clear()
