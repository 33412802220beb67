"""`celery -A workers saga ...`: operators list, inspect and steer sagas through the engine.

Registered through the `celery.commands` entry point; every command acts in one
transaction under the saga's row lock, so running one twice, or beside the sweeper,
does no harm.
"""

from __future__ import annotations

import uuid

import click
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from models.db import unit_of_work
from models.saga import IN_FLIGHT, SAGA_STATUSES, Saga
from sagas import check, engine
from sagas.registry import DEFINITIONS, registered, step_name


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _step_name(saga: Saga) -> str:
    return step_name(saga.kind, saga.definition_version, saga.current_step)


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
        click.echo(f"{row.id!s:36}  {row.kind:14}  {row.status:12}  {_step_name(row):18}  "
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
    """A saga and its step log, with each attempt's Celery task id."""
    try:
        key = uuid.UUID(saga_id)
    except ValueError:
        raise click.ClickException(f"{saga_id!r} is not a saga id") from None
    with unit_of_work() as session:
        found = session.scalar(select(Saga).where(Saga.id == key)
                               .options(selectinload(Saga.steps)))
    if found is None:
        raise click.ClickException(f"no saga {saga_id}")
    click.echo(f"saga {found.id}  {found.kind}  {found.status}  version {found.version}  "
               f"definition {found.definition_version or '(none)'}")
    click.echo(f"at {_step_name(found)} ({found.phase}), data {found.payload}")
    if found.error:
        click.echo(f"error: {found.error}")
    click.echo(f"\n{'STEP':18}  {'PHASE':12}  {'TRY':>3}  {'STATUS':10}  {'TASK':26}  "
               f"{'TASK ID':36}  STARTED              ERROR")
    for step in found.steps:
        click.echo(f"{step.step:18}  {step.phase:12}  {step.attempt:>3}  {step.status:10}  "
                   f"{step.task_name:26}  {step.task_id or '-':36}  "
                   f"{_when(step.started_at):19}  {step.error or ''}")


def _act(command, saga_id: str, done: str) -> None:
    try:
        with unit_of_work() as session:
            changed = command(session, saga_id)
            status, step, phase = changed.status, _step_name(changed), changed.phase
    except engine.SagaStateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"saga {saga_id} {done}: now {status} at {step} ({phase})")


@saga.command("retry")
@click.argument("saga_id")
def retry_saga(saga_id: str) -> None:
    """Run a failed saga's step again; the saga then goes on."""
    _act(engine.retry, saga_id, "retried")


@saga.command()
@click.argument("saga_id")
def compensate(saga_id: str) -> None:
    """Undo a running saga's completed steps now."""
    _act(engine.compensate, saga_id, "compensating")


@saga.command("abort")
@click.argument("saga_id")
def abort_saga(saga_id: str) -> None:
    """Stop a saga as failed, without undoing anything."""
    _act(engine.abort, saga_id, "aborted")
