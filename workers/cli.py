"""`celery -A workers saga ...`: operators list, inspect and steer sagas through the engine.

Registered through the `celery.commands` entry point; every command acts in one
transaction under the saga's row lock, so running one twice, or beside the sweeper,
does no harm.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from models.db import unit_of_work
from models.saga import FAILED, IN_FLIGHT, RUNNING, SAGA_STATUSES, Saga, SagaStep
from sagas import check, engine
from sagas.machine import AbortOrdered, CompensationOrdered, Event, RetryOrdered
from sagas.registry import DEFINITIONS, current_step, registered
from workers import explain, repair


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@click.group()
def saga() -> None:
    """List, show, retry, compensate and abort sagas."""


@saga.command("list")
@click.option("--status", type=click.Choice(SAGA_STATUSES))
@click.option("--kind", type=click.Choice(sorted(DEFINITIONS)))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def list_sagas(status: str | None, kind: str | None, limit: int) -> None:
    """A table of the newest sagas."""
    query = select(Saga).order_by(Saga.created_at.desc()).limit(limit)
    if status:
        query = query.where(Saga.status == status)
    if kind:
        query = query.where(Saga.kind == kind)
    with unit_of_work() as session:
        sagas = session.scalars(query).all()
    click.echo(f"{'ID':36}  {'KIND':14}  {'STATUS':12}  {'STEP':18}  {'PHASE':12}  STARTED")
    for row in sagas:
        click.echo(f"{row.id!s:36}  {row.kind:14}  {row.status:12}  {current_step(row):18}  "
                   f"{row.phase:12}  {_when(row.created_at)}")
    if not sagas:
        click.echo("(no sagas)")


@saga.command()
def versions() -> None:
    """Each kind's definition versions, with their sagas by status.

    A saga records the fingerprint of its definition (steps and tasks) when it starts; a
    deploy that changes a definition leaves the sagas in flight on an older version.
    """
    query = (select(Saga.kind, Saga.definition_version, Saga.status, func.count())
             .group_by(Saga.kind, Saga.definition_version, Saga.status))
    counts: dict[tuple[str, str | None], dict[str, int]] = {}
    with unit_of_work() as session:
        for kind, version, status, count in session.execute(query):
            counts.setdefault((kind, version), {})[status] = count
    for kind, definition in DEFINITIONS.items():
        counts.setdefault((kind, definition.version), {})
    click.echo(f"{'KIND':14}  {'VERSION':12}  {'':9}  SAGAS BY STATUS")
    for (kind, version), by_status in sorted(counts.items(), key=lambda row: (
            row[0][0], row[0][1] != _current(row[0][0]), row[0][1] or "")):
        mark = "current" if version == _current(kind) else ""
        statuses = ", ".join(f"{status} {by_status[status]}" for status in SAGA_STATUSES
                             if by_status.get(status)) or "none"
        click.echo(f"{kind:14}  {version or '(none)':12}  {mark:9}  {statuses}")


def _current(kind: str) -> str | None:
    """The version of `kind` that this code runs; None for a kind it no longer defines."""
    definition = DEFINITIONS.get(kind)
    return definition.version if definition else None


@saga.command("check")
@click.option("--record", "recording", is_flag=True,
              help="First record this code's versions as deployed (sagas/versions.json).")
@click.pass_context
def check_definitions(ctx: click.Context, recording: bool) -> None:
    """Fail when this code would strand sagas: a definition changed without its old version
    kept, a task a definition sends that no worker defines, or sagas in flight on a
    version this code does not have (read from the database).
    """
    if recording:
        check.record(DEFINITIONS.values())
    app = ctx.obj.app
    app.loader.import_default_modules()
    problems = [*check.unkept(DEFINITIONS.values(), registered(), check.recorded()),
                *check.untasked(registered(), app.tasks)]
    have = {(definition.kind, definition.version) for definition in registered()}
    query = (select(Saga.kind, Saga.definition_version, func.count())
             .where(Saga.status.in_(IN_FLIGHT), Saga.definition_version.is_not(None))
             .group_by(Saga.kind, Saga.definition_version))
    with unit_of_work() as session:
        problems += [f"{count} {kind} sagas in flight run on {version}, which this code does "
                     "not have: keep it in sagas/retired.py"
                     for kind, version, count in session.execute(query)
                     if (kind, version) not in have]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s): this deploy would strand sagas")
    click.echo(f"every saga can finish: {len(have)} definition versions registered")


@saga.command()
@click.argument("saga_id")
def show(saga_id: str) -> None:
    """A saga and its step log: each attempt's Celery task id, the worker that ran it,
    when it started and how long it took."""
    found = _found(saga_id)
    click.echo(f"saga {found.id}  {found.kind}  {found.status}  version {found.version}  "
               f"definition {found.definition_version or '(none)'}")
    click.echo(f"at {current_step(found)} ({found.phase}), data {found.payload}")
    if found.error:
        click.echo(f"error: {found.error}")
    click.echo(f"\n{'STEP':18}  {'PHASE':12}  {'TRY':>3}  {'STATUS':10}  {'TASK':26}  "
               f"{'TASK ID':36}  {'WORKER':24}  STARTED              {'TOOK':>8}  ERROR")
    for step in found.steps:
        click.echo(f"{step.step:18}  {step.phase:12}  {step.attempt:>3}  {step.status:10}  "
                   f"{step.task_name:26}  {step.task_id or '-':36}  {step.worker or '-':24}  "
                   f"{_when(step.started_at):19}  {_took(step):>8}  {step.error or ''}")


@saga.command("explain")
@click.argument("saga_id")
def explain_saga(saga_id: str) -> None:
    """What a saga waits for now, in words: its step, the queue its command waits in, the
    worker that last took it, its deadline and what the sweeper does when it passes."""
    for line in explain.in_words(_found(saga_id)):
        click.echo(line)


def _found(saga_id: str) -> Saga:
    """The saga with its step log; a clear error for a wrong id."""
    try:
        key = uuid.UUID(saga_id)
    except ValueError:
        raise click.ClickException(f"{saga_id!r} is not a saga id") from None
    with unit_of_work() as session:
        found = session.scalar(select(Saga).where(Saga.id == key)
                               .options(selectinload(Saga.steps)))
    if found is None:
        raise click.ClickException(f"no saga {saga_id}")
    return found


def _took(step: SagaStep) -> str:
    return "-" if step.took is None else f"{step.took.total_seconds() * 1000:.0f} ms"


def _selecting(command: Callable[..., None]) -> Callable[..., None]:
    """The options that select sagas for a repair, and the dry run."""
    options = [
        click.argument("saga_ids", nargs=-1),
        click.option("--status", "statuses", multiple=True, type=click.Choice(SAGA_STATUSES),
                     help="Sagas in this status (repeatable); by default those the command "
                          "fits."),
        click.option("--kind", type=click.Choice(sorted(DEFINITIONS))),
        click.option("--step", help="Sagas at this step."),
        click.option("--error", help="Sagas whose error contains this text."),
        click.option("--since", type=click.DateTime(), help="Sagas started at or after this."),
        click.option("--until", type=click.DateTime(), help="Sagas started before this."),
        click.option("--limit", type=click.IntRange(1), help="At most this many, oldest first."),
        click.option("--dry-run", is_flag=True, help="Say what each would do; change nothing."),
        click.option("--yes", is_flag=True, help=f"Act on more than {repair.HANDFUL} sagas "
                                                 "without asking."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _repair(act: repair.Act, order: Event, done: str, fits: tuple[str, ...],
            saga_ids: tuple[str, ...], dry_run: bool, yes: bool, statuses: tuple[str, ...],
            **selected: Any) -> None:
    """Act on the sagas named, or on those selected (by default, in the statuses the
    command fits); a dry run says what it would do to each."""
    selection = repair.Selection(statuses=statuses, **selected)
    if saga_ids and selection != repair.Selection():
        raise click.UsageError("name sagas by id or select them with options, not both")
    if not saga_ids and selection == repair.Selection():
        raise click.UsageError("name sagas by id, or select them: --status, --kind, --step, "
                               "--error, --since, --until, --limit")
    with unit_of_work() as session:
        if saga_ids:
            keys = repair.parse_ids(saga_ids)
            sagas = list(session.scalars(select(Saga).where(Saga.id.in_(keys))))
            missing = set(keys) - {saga.id for saga in sagas}
            if missing:
                raise click.ClickException(f"no saga {', '.join(map(str, sorted(missing)))}")
        else:
            sagas = repair.Selection(statuses=statuses or fits, **selected).chosen(session)
    if dry_run:
        for found in sagas:
            click.echo(f"{repair.describe(found)}: {repair.plan(found, order)}")
        click.echo(f"{len(sagas)} sagas; nothing changed (dry run)")
        return
    if len(saga_ids) == 1:  # one saga, named: its own answer, or its own error
        _act(act, saga_ids[0], done)
        return
    counts = repair.act_on_each(act, done, sagas, yes=yes)
    click.echo(", ".join(f"{name} {counts[name]}" for name in (done, "skipped", "errors")))
    if counts["errors"]:
        raise click.exceptions.Exit(1)


def _act(command: repair.Act, saga_id: str, done: str) -> None:
    try:
        with unit_of_work() as session:
            changed = command(session, saga_id)
            status, step, phase = changed.status, current_step(changed), changed.phase
    except engine.SagaStateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"saga {saga_id} {done}: now {status} at {step} ({phase})")


@saga.command("retry")
@_selecting
def retry_saga(**options: Any) -> None:
    """Run failed sagas' steps again; each saga then goes on.

    Name sagas by id, or select them (failed ones, unless --status says otherwise), e.g.
    `retry --kind create_order --step release_pet --since 2026-12-05T10:00 --dry-run`.
    """
    _repair(engine.retry, RetryOrdered(), "retried", (FAILED,), **options)


@saga.command()
@_selecting
def compensate(**options: Any) -> None:
    """Undo running or failed sagas' completed steps now (selected: running or failed)."""
    _repair(engine.compensate, CompensationOrdered(), "compensating", (RUNNING, FAILED),
            **options)


@saga.command("abort")
@_selecting
def abort_saga(**options: Any) -> None:
    """Stop sagas as failed, without undoing anything (selected: those in flight)."""
    _repair(engine.abort, AbortOrdered(), "aborted", IN_FLIGHT, **options)
