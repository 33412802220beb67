"""Repairing many sagas at once: select them, see what each would do, act on each.

An operator's commands (`celery -A workers saga retry | compensate | abort`) take saga ids
or a selection. What a command would do to a saga comes from the engine's own rules
(`sagas.machine`): the dry run asks them what the command decides, and, for a
compensation, what follows when each compensation answers.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, fields
from datetime import datetime

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db import unit_of_work, utcnow
from models.saga import COMPENSATING, Saga
from sagas import machine
from sagas.engine import SagaStateError
from sagas.machine import Answered, Command, Delivery, Event, SagaState
from sagas.registry import UnknownDefinition, current_step, definition_of

# More sagas than this and a command asks before it acts (unless --yes).
HANDFUL = 5
Act = Callable[[Session, str], SagaState]


@dataclass(frozen=True)
class Selection:
    statuses: tuple[str, ...] = ()
    kind: str | None = None
    step: str | None = None
    error: str | None = None  # a substring of the saga's error
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    limit: int | None = None

    def chosen(self, session: Session) -> list[Saga]:
        """The sagas selected, oldest first."""
        query = select(Saga).order_by(Saga.created_at)
        if self.statuses:
            query = query.where(Saga.status.in_(self.statuses))
        if self.kind:
            query = query.where(Saga.kind == self.kind)
        if self.error:
            query = query.where(Saga.error.contains(self.error, autoescape=True))
        if self.since:
            query = query.where(Saga.created_at >= self.since)
        if self.until:
            query = query.where(Saga.created_at < self.until)
        if self.step is None and self.limit:
            query = query.limit(self.limit)
        sagas = list(session.scalars(query))
        if self.step is not None:  # its name depends on the definition each saga runs on
            sagas = [saga for saga in sagas if current_step(saga) == self.step][:self.limit]
        return sagas


def state_of(saga: Saga) -> SagaState:
    return SagaState(**{field.name: getattr(saga, field.name) for field in fields(SagaState)})


def plan(saga: Saga, order: Event) -> str:
    """What the order would do to the saga next, in words."""
    try:
        definition = definition_of(saga.kind, saga.definition_version)
        decision = machine.decide(definition, state_of(saga), order, utcnow())
    except (SagaStateError, UnknownDefinition) as exc:
        return f"skip: {exc}"
    assert decision is not None  # an operator's order always decides
    commands = _commands(decision)
    # A compensation goes on, each compensation answered, until the saga ends.
    while commands and decision.saga.status == COMPENSATING:
        last = commands[-1]
        answered = Answered(Delivery(str(saga.id), last.step, last.phase))
        decision = machine.decide(definition, decision.saga, answered, utcnow())
        commands += _commands(decision)
    runs = ", then ".join(f"{c.task} ({c.step} {c.phase})" for c in commands)
    return (f"would run {runs}" if runs else "would run nothing") + (
        f"; ends {decision.saga.status}" if decision.saga.status not in machine.IN_FLIGHT
        else "")


def _commands(decision: machine.Decision) -> list[Command]:
    return [effect for effect in decision.effects if isinstance(effect, Command)]


def describe(saga: Saga) -> str:
    return f"saga {saga.id}  {saga.kind}  {saga.status} at {current_step(saga)} ({saga.phase})"


def act_on_each(act: Act, done: str, sagas: list[Saga], *, yes: bool) -> Counter[str]:
    """Act on every saga, each in a transaction of its own; counts of what happened. A saga
    that moved on since it was selected is skipped, as the engine refuses it."""
    if len(sagas) > HANDFUL and not yes:
        click.confirm(f"{done.capitalize()} {len(sagas)} sagas?", abort=True)
    counts: Counter[str] = Counter()
    many = len(sagas) > HANDFUL
    progress = (click.progressbar(sagas, label=done.capitalize(), file=click.get_text_stream(
        "stderr")) if many else nullcontext(sagas))
    with progress as each:
        for saga in each:
            try:
                with unit_of_work() as session:
                    act(session, str(saga.id))
                counts[done] += 1
            except SagaStateError as exc:
                counts["skipped"] += 1
                click.echo(f"skipped saga {saga.id}: {exc}", err=many)
            except Exception as exc:  # counted and shown; the rest go on
                counts["errors"] += 1
                click.echo(f"error on saga {saga.id}: {type(exc).__name__}: {exc}", err=True)
    return counts


def parse_ids(ids: Iterable[str]) -> list[uuid.UUID]:
    parsed = []
    for saga_id in ids:
        try:
            parsed.append(uuid.UUID(saga_id))
        except ValueError:
            raise click.ClickException(f"{saga_id!r} is not a saga id") from None
    return parsed
