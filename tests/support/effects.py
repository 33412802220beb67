"""A scripted participant's own write, for engine tests to see it committed or rolled
back with the step: a row in a real table of the schema (a pet named after the effect)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from models.db import unit_of_work
from models.pet import Pet


def write(session: Session, key: str) -> None:
    session.execute(insert(Pet).values(name=key, status="available", photo_urls=[], version=1))


def written(prefix: str) -> list[str]:
    """The keys of every committed write whose key starts with `prefix`."""
    with unit_of_work() as session:
        return list(session.scalars(select(Pet.name).where(Pet.name.startswith(prefix))))


def forget(prefix: str) -> None:
    with unit_of_work() as session:
        session.execute(delete(Pet).where(Pet.name.startswith(prefix)))
