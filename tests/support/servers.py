"""The test run's work folder, and the servers the integration and e2e layers share.

The work folder holds pytest's tmp_path folders, the workers' logs and the embedded
servers' data. Servers start only once a layer that needs them is collected (its
conftest calls `start`), so `tests/unit` runs with none. With DATABASE_URL and REDIS_URL
set, the run uses those servers, in a fresh database and a Redis database of its own,
both emptied at the end; without them, embedded servers start in the work folder.

With PETSTORE_TEST_BROKER=rabbitmq the broker is RabbitMQ (PETSTORE_TEST_RABBITMQ_URL, by
default guest on 127.0.0.1:5672), in a virtual host of the run's own when `rabbitmqctl`
can make one; where no RabbitMQ answers, every test of the run is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

CLAIM_KEY = "petstore:test-run"
CLAIM_SECONDS = 86400  # a crashed run's claim lapses; its keys stay, so the db stays taken
# Atomic, so two runs never take the same database: only an empty one is claimed.
CLAIM_SCRIPT = ("if redis.call('DBSIZE') == 0 then "
                "return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end "
                "return false")
REDIS_DATABASES = range(1, 16)  # of Redis's default 16, all but db 0, a developer's own


# What the unit layer sees when no server is named: addresses nobody serves, so a test
# that reaches for a server fails at once instead of finding one by chance.
NOWHERE = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
           "REDIS_URL": "redis://127.0.0.1:1/0"}


@dataclass
class _Run:
    folder: Path
    given: dict[str, str]  # the servers the user named, before NOWHERE filled the gaps
    tmpdir: str | None  # TMPDIR as it was, restored at the end
    tempdir: str | None  # tempfile's own, likewise
    started: bool = False
    skipped: str | None = None  # why the run's tests cannot run here
    cleanup: ExitStack = field(default_factory=ExitStack)


_run: _Run | None = None


def open_run(config: pytest.Config) -> Path:
    """Create the run's work folder. pytest's tmp_path folders (unless the user named a
    --basetemp) and the run's temporary folder (TMPDIR, inherited by every process the
    run starts) go in it, so what the run leaves there is its own, whoever else runs."""
    global _run
    folder = Path(tempfile.mkdtemp(prefix="petstore-test-"))
    if config.option.basetemp is None:
        config.option.basetemp = str(folder / "pytest")
    given = {name: os.environ[name] for name in NOWHERE if os.environ.get(name)}
    _run = _Run(folder, given, os.environ.get("TMPDIR"), tempfile.tempdir)
    temp_folder().mkdir()
    os.environ.update({**NOWHERE, **given}, TMPDIR=str(temp_folder()))
    tempfile.tempdir = str(temp_folder())
    return folder


def work_folder() -> Path:
    assert _run is not None, "open_run was not called"
    return _run.folder


def skipped() -> str | None:
    """Why this run's tests are skipped, when they are."""
    return _run.skipped if _run else None


def temp_folder() -> Path:
    return work_folder() / "tmp"


def close_run(passed: bool) -> Path | None:
    """Remove the work folder if the run passed; else keep it and return its path."""
    folder = work_folder()
    _restore_tempdir(_run)
    if not passed:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    return None


def _restore_tempdir(run: _Run) -> None:
    tempfile.tempdir = run.tempdir
    if run.tmpdir is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = run.tmpdir


def start() -> None:
    """Servers, a fresh database and the settings' environment for the run, once."""
    run = _run
    assert run is not None, "open_run was not called"
    if run.started:
        return
    run.started = True  # a failed start is not retried: its first error is the one to see
    broker_url = None
    if os.environ.get("PETSTORE_TEST_BROKER") == "rabbitmq":
        broker_url = _rabbitmq(run)
        if broker_url is None:
            return
    else:  # the Redis run: a BROKER_URL of the developer's own must not take its place
        os.environ.pop("BROKER_URL", None)
    database_url, redis_url = run.given.get("DATABASE_URL"), run.given.get("REDIS_URL")
    if redis_url:
        redis_url = _claim_redis_database(redis_url, run.cleanup)
    if not (database_url and redis_url):
        from petstore.embedded import EmbeddedServers, free_port

        servers = EmbeddedServers(run.folder / "servers", redis_port=free_port()).start()
        run.cleanup.callback(servers.stop)
        database_url = database_url or servers.database_url
        redis_url = redis_url or servers.redis_url
    os.environ.update(_settings(_fresh_database(database_url, run.cleanup), redis_url,
                                run.folder), **({"BROKER_URL": broker_url} if broker_url else {}))
    from models.db import dispose
    from models.migrate import upgrade

    run.cleanup.callback(dispose)  # the pool's connections, before the database is dropped
    upgrade()


def stop() -> None:
    """Release what `start` took, last first, each step even if another fails."""
    if _run is not None:
        _run.cleanup.close()


def _settings(database_url: str, redis_url: str, folder: Path) -> dict[str, str]:
    return dict(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PETSTORE_DATA_DIR=str(folder),
        PETSTORE_OUTBOX_INTERVAL="0.5",
        PETSTORE_SWEEP_INTERVAL="0.5",
        PETSTORE_RETRY_SCALE="0.05",
        # An order change answers once its saga ends, however slow the machine: no verdict
        # depends on the clock (a test that wants a 202 asks for it with respond-async).
        PETSTORE_ORDER_WAIT="120",
        # Every test signs up and fails logins from 127.0.0.1; the limits' own tests set
        # theirs and use addresses of their own.
        PETSTORE_SIGNUP_LIMIT="1000000",
        PETSTORE_LOGIN_ADDRESS_LIMIT="1000000",
        PETSTORE_OWNER=f"owner{uuid.uuid4().hex[:6]}:{uuid.uuid4().hex}",
    )


def _fresh_database(database_url: str, cleanup: ExitStack) -> str:
    """A new database on the server of `database_url`, dropped at the end; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    given = make_url(database_url)
    admin = given.set(drivername="postgresql", database="postgres")
    admin_url = admin.render_as_string(hide_password=False)
    name = f"petstore_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    cleanup.callback(_drop_database, admin_url, name)
    return given.set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rabbitmq(run: _Run) -> str | None:
    """The URL of a virtual host for the run on RabbitMQ, deleted at the end; None, the
    run skipped, if RabbitMQ does not answer."""
    from petstore.embedded import RABBITMQ_URL, RabbitMQNotFound, RabbitVirtualHost

    vhost = RabbitVirtualHost(os.environ.get("PETSTORE_TEST_RABBITMQ_URL", RABBITMQ_URL))
    try:
        vhost.create()
    except RabbitMQNotFound as error:
        run.skipped = f"the RabbitMQ run is skipped: {error}"
        return None
    run.cleanup.callback(vhost.delete)
    return vhost.url


def _claim_redis_database(redis_url: str, cleanup: ExitStack) -> str:
    """The URL of an empty database on the server of `redis_url`, claimed for this run
    and flushed at its end."""
    import redis

    token = uuid.uuid4().hex
    for number in REDIS_DATABASES:
        url = _with_database(redis_url, number)
        with redis.Redis.from_url(url) as client:
            if client.eval(CLAIM_SCRIPT, 1, CLAIM_KEY, token, CLAIM_SECONDS):
                cleanup.callback(_flush, url)
                return url
    raise RuntimeError(f"no empty Redis database in {REDIS_DATABASES} on {redis_url}")


def _flush(url: str) -> None:
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()


def _with_database(redis_url: str, number: int) -> str:
    return urlunsplit(urlsplit(redis_url)._replace(path=f"/{number}"))
