"""The engine, the declarative base and the unit of work every local transaction uses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import BigInteger, Column, MetaData, create_engine, exists, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from common.settings import get_settings

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


class IdTaken(Exception):
    """A client chose an id that a row already has: never an overwrite."""

    def __init__(self, what: str, chosen: int | str) -> None:
        super().__init__(f"{what} {chosen} already exists: choose another id, or send none "
                         "(or 0) and the store assigns one")
        self.chosen = chosen


def new_id(session: Session, id_column: Column, chosen: int | None, *, what: str,
           sequence: str | None = None) -> int:
    """The id for a new row: the client's choice when it made one (checked here; a row that
    takes it meanwhile fails the insert), else the next number of the id's sequence that no
    row holds, since a client may have chosen it before the sequence got there."""
    if chosen:
        if session.scalar(select(exists().where(id_column == chosen))):
            raise IdTaken(what, chosen)
        return chosen
    table = id_column.table.name
    # One round trip a number: draw it and see whether a row holds it.
    drawn = select(func.nextval(sequence or func.pg_get_serial_sequence(table, id_column.name))
                   .label("id")).subquery()
    while True:
        candidate, taken = session.execute(
            select(drawn.c.id, exists().where(id_column == drawn.c.id))).one()
        if not taken:
            return candidate


# Each transaction checks its pooled connection first (a round trip), so that a request
# never fails on a connection a database restart broke. Worker processes turn this off:
# their tasks are retried on such an error, and the pool then reconnects.
_check_connections = True


def check_connections_before_use(enabled: bool) -> None:
    global _check_connections
    dispose()
    _check_connections = enabled


def added(session: Session, row: Base, *, what: str) -> None:
    """Add a new row now; its id taken meanwhile by a concurrent insert is `IdTaken`."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig.diag, "constraint_name", None) == f"pk_{row.__tablename__}":
            raise IdTaken(what, row.id) from exc
        raise


@cache
def engine() -> Engine:
    return create_engine(get_settings().database_url, pool_pre_ping=_check_connections,
                         pool_size=10)


@cache
def bookkeeping_engine() -> Engine:
    """Autocommit connections whose commits do not wait for the disk: for bookkeeping that a
    crash may lose harmlessly (a message marked sent is, at worst, sent again)."""
    # No check before use: a write that meets a connection a restart broke fails, is
    # logged and is made again by the periodic relay; the pool then reconnects.
    return create_engine(get_settings().database_url, pool_size=2, isolation_level="AUTOCOMMIT",
                         connect_args={"options": "-c synchronous_commit=off"})


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


@contextmanager
def one_statement() -> Iterator[Connection]:
    """A connection for work of one statement (a read, or a write atomic by itself), in
    autocommit: PostgreSQL runs the statement as its own transaction, sparing a BEGIN and
    a COMMIT. Nothing may be sent after it: there is no outbox here."""
    with engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


def dispose() -> None:
    """Forget pooled connections (after a fork, or when settings change in tests)."""
    for cached in (engine, bookkeeping_engine):
        if cached.cache_info().currsize:
            cached().dispose()
        cached.cache_clear()
    session_factory.cache_clear()
