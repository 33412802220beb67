"""`petstore`: the operator's commands (start the system, migrate, create the owner)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from common.settings import PROJECT_ROOT, RunRecord, Settings, data_dir_of, write_private


@click.group()
def cli() -> None:
    """Petstore sagas."""


@cli.command()
def migrate() -> None:
    """Apply the database migrations."""
    from models.migrate import upgrade

    upgrade()
    click.echo("database is at the latest migration")


@cli.command("ensure-owner")
def ensure_owner_command() -> None:
    """Create or update the store owner named by PETSTORE_OWNER."""
    from common.settings import get_settings
    from models.db import unit_of_work
    from models.user import ensure_owner

    owner = get_settings().owner
    if owner is None:
        click.echo("PETSTORE_OWNER is empty: no store owner created")
        return
    with unit_of_work() as session:
        ensure_owner(session, *owner)
    click.echo(f"store owner {owner[0]!r} is ready")


@cli.command()
@click.option("--older-than-days", type=click.FloatRange(min=0), default=30.0,
              show_default=True, help="keep what ended or was sent more recently")
def prune(older_than_days: float) -> None:
    """Delete ended sagas and sent outbox messages older than the cut-off."""
    from datetime import timedelta

    from models.db import unit_of_work
    from sagas.retention import prune_outbox, prune_sagas

    cut_off = timedelta(days=older_than_days)
    totals = {"sagas": 0, "outbox messages": 0}
    for name, prune_batch in (("sagas", prune_sagas), ("outbox messages", prune_outbox)):
        while True:  # batch by batch: short transactions, no long locks
            with unit_of_work() as session:
                gone = prune_batch(session, cut_off)
            totals[name] += gone
            if not gone:
                break
    click.echo(", ".join(f"{count} {name}" for name, count in totals.items()) + " deleted")


class AlreadyRunning(click.ClickException):
    """Another `petstore dev` holds this data folder: this one starts nothing."""


@contextlib.contextmanager
def _run_lock(data_dir: Path) -> Iterator[None]:
    """Hold `<data folder>/run.lock` for the life of the run, or raise `AlreadyRunning`.

    An exclusive, non-blocking `flock`: the kernel releases it when the process ends, however
    it ends, so a run that was killed never blocks the next. The file itself stays (deleting
    a lock file lets two runs lock two different files).
    """
    lock = os.open(data_dir / "run.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(_already_running(data_dir)) from None
        yield
    finally:
        os.close(lock)  # releases the lock


def _already_running(data_dir: Path) -> str:
    run = RunRecord.read(data_dir)
    if run is None:  # it holds the lock, but has not written its run file yet
        return f"the system is already starting with this data folder ({data_dir})"
    servers = "".join(f", {name} {url}" for name, url in (
        ("PostgreSQL", run.database_url), ("Redis", run.redis_url)) if url)
    return (f"the system already runs with this data folder ({data_dir}): PID {run.pid}, "
            f"API {run.api_url}, Flower {run.flower_url}{servers}")


class _Stop(Exception):
    """SIGTERM before the process manager runs: unwind, stopping what was started."""


@cli.command()
@click.option("--procfile", type=click.Path(exists=True, path_type=Path),
              default=PROJECT_ROOT / "Procfile", show_default=True)
def dev(procfile: Path) -> None:
    """Start everything: the API, a worker per queue, beat and Flower.

    Without DATABASE_URL / REDIS_URL it starts embedded PostgreSQL and Redis whose data
    stays under PETSTORE_DATA_DIR (default .data). While it runs, <data folder>/run.json
    says where (its PID, the API and Flower URLs, the embedded servers' URLs), so other
    commands of this checkout find them; a second `petstore dev` with the same data folder
    refuses to start. Ctrl-C stops it all.
    """
    # Absolute, for the Procfile's processes run in the project's folder.
    data_dir = data_dir_of(os.environ).resolve()
    os.environ["PETSTORE_DATA_DIR"] = str(data_dir)
    # First of all: every process of the Procfile may need it (beat keeps its schedule there).
    data_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(data_dir):
        # Ours now: a run file left here belongs to a run that died; it must not lend its
        # URLs to these settings.
        RunRecord.remove(data_dir)
        _run(procfile, data_dir, Settings.from_env())


def _run(procfile: Path, data_dir: Path, settings: Settings) -> None:
    """Start the servers if needed and the Procfile's processes; stop them at the end."""
    env = dict(os.environ)
    # Flower's API runs any task for whoever reaches it: never without credentials.
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    env["FLOWER_BASIC_AUTH"] = flower_login = _secret(
        data_dir, env, "FLOWER_BASIC_AUTH", FLOWER_CREDENTIALS,
        f"admin:{secrets.token_urlsafe(16)}")
    # /metrics, closed without a token, opens to Prometheus with this one.
    env["PETSTORE_METRICS_TOKEN"] = _secret(data_dir, env, "PETSTORE_METRICS_TOKEN",
                                            METRICS_TOKEN, secrets.token_urlsafe(24))
    # The Procfile's commands come from this environment's bin folder.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = RunRecord(pid=os.getpid(), api_url=f"http://127.0.0.1:{settings.port}/v2",
                    flower_url=f"http://127.0.0.1:{settings.flower_port}")
    processes: subprocess.Popen | None = None

    def stop(*_: object) -> None:
        # Once the process manager runs, it stops its processes and `_run` goes on to the end.
        if processes is None:
            raise _Stop
        processes.terminate()

    # A SIGTERM now unwinds through `finally` too (Ctrl-C does, as KeyboardInterrupt).
    signal.signal(signal.SIGTERM, stop)
    servers = None
    try:
        run.write(data_dir)  # a second run can say who holds the data folder
        if not (settings.database_url and settings.redis_url):
            from petstore.embedded import EmbeddedServers

            port = int(os.environ.get("PETSTORE_REDIS_PORT", "6390"))
            servers = EmbeddedServers(data_dir, redis_port=port)
            servers.start()
            # Only the embedded servers' URLs are written down: a URL from the
            # environment may hold a password, and whoever set it can set it again.
            embedded: dict[str, str] = {}
            if not env.get("DATABASE_URL"):
                embedded["database_url"] = env["DATABASE_URL"] = servers.database_url
            if not env.get("REDIS_URL"):
                embedded["redis_url"] = env["REDIS_URL"] = servers.redis_url
            run = dataclasses.replace(run, **embedded)
            click.echo(f"embedded PostgreSQL: {env['DATABASE_URL']}")
            click.echo(f"embedded Redis: {env['REDIS_URL']}")
            run.write(data_dir)
        petstore = [sys.executable, "-m", "petstore"]
        subprocess.run([*petstore, "migrate"], env=env, check=True)
        subprocess.run([*petstore, "ensure-owner"], env=env, check=True)
        user, _, password = flower_login.partition(":")
        click.echo(f"API on {run.api_url} (docs at /v2/docs), Flower on {run.flower_url} "
                   f"(user {user!r}, password {password!r}); "
                   f"where it runs: {RunRecord.path(data_dir)}")
        click.echo(f"metrics on http://127.0.0.1:{settings.port}/metrics with the header "
                   f"'Authorization: Bearer <token>', the token in "
                   f"{_kept_in(data_dir, 'PETSTORE_METRICS_TOKEN', METRICS_TOKEN)}")
        # honcho hands PORT to each process from this base: the API is first, so it gets it.
        processes = subprocess.Popen(["honcho", "start", "-f", str(procfile), "-d",
                                      str(PROJECT_ROOT), "-p", str(settings.port)], env=env)
        # Ctrl-C reaches honcho too; a SIGTERM to this process is passed on to it.
        while processes.poll() is None:
            with contextlib.suppress(KeyboardInterrupt):
                processes.wait()
    except _Stop:
        click.echo("stopped before the processes started")
    finally:
        signal.signal(signal.SIGTERM, lambda *_: None)  # stopping already: finish that
        # The URLs are about to stop answering: no other command may be sent to them.
        RunRecord.remove(data_dir)
        if servers is not None:
            servers.stop()  # this run's own servers, and only those


# Secrets made on the first start, kept in the data folder (mode 0600); the variable wins.
FLOWER_CREDENTIALS = "flower-credentials"  # `user:password`
METRICS_TOKEN = "metrics-token"


def _secret(data_dir: Path, env: dict[str, str], variable: str, file_name: str,
            made: str) -> str:
    """`env[variable]` when set, else the value kept in `file_name`, made the first time."""
    if env.get(variable):
        return env[variable]
    path = data_dir / file_name
    if not path.exists():
        write_private(path, made)
    return path.read_text().strip()


def _kept_in(data_dir: Path, variable: str, file_name: str) -> str:
    """Where the operator finds a secret: the variable they set, or its file."""
    return f"${variable}" if os.environ.get(variable) else str(data_dir / file_name)
