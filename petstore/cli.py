"""`petstore`: the operator's commands (start the system, migrate, create the owner)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from petstore.settings import PROJECT_ROOT, Settings


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
    from models.db import unit_of_work
    from models.user import ensure_owner
    from petstore.settings import get_settings

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


@cli.command()
@click.option("--procfile", type=click.Path(exists=True, path_type=Path),
              default=PROJECT_ROOT / "Procfile", show_default=True)
def dev(procfile: Path) -> None:
    """Start everything: the API, a worker per queue, beat and Flower.

    Without DATABASE_URL / REDIS_URL it starts embedded PostgreSQL and Redis whose data
    stays under PETSTORE_DATA_DIR (default .data). Ctrl-C stops it all.
    """
    settings = Settings.from_env()
    env = dict(os.environ)
    env.setdefault("PETSTORE_DATA_DIR", str(settings.data_dir))
    env.setdefault("FLOWER_UNAUTHENTICATED_API", "true")
    # The Procfile's commands come from this environment's bin folder.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    servers = None
    if not (settings.database_url and settings.redis_url):
        from petstore.embedded import EmbeddedServers

        port = int(os.environ.get("PETSTORE_REDIS_PORT", "6390"))
        servers = EmbeddedServers(settings.data_dir, redis_port=port).start()
        env.setdefault("DATABASE_URL", servers.database_url)
        env.setdefault("REDIS_URL", servers.redis_url)
        click.echo(f"embedded PostgreSQL: {env['DATABASE_URL']}")
        click.echo(f"embedded Redis: {env['REDIS_URL']}")
    try:
        petstore = [sys.executable, "-m", "petstore"]
        subprocess.run([*petstore, "migrate"], env=env, check=True)
        subprocess.run([*petstore, "ensure-owner"], env=env, check=True)
        click.echo(f"API on http://127.0.0.1:{settings.port}/v2 (docs at /v2/docs), "
                   f"Flower on http://127.0.0.1:{settings.flower_port}")
        # honcho hands PORT to each process from this base: the API is first, so it gets it.
        processes = subprocess.Popen(["honcho", "start", "-f", str(procfile), "-d",
                                      str(PROJECT_ROOT), "-p", str(settings.port)], env=env)
        # Ctrl-C reaches honcho too; a SIGTERM to this process is passed on to it.
        signal.signal(signal.SIGTERM, lambda *_: processes.terminate())
        while processes.poll() is None:
            with contextlib.suppress(KeyboardInterrupt):
                processes.wait()
    finally:
        if servers is not None:
            servers.stop()
