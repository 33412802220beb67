"""All configuration, read once from the environment (12-factor).

`DATABASE_URL` and `REDIS_URL` name the servers; `BROKER_URL` (say `amqp://...` for
RabbitMQ) moves the broker off Redis, which still keeps the API's rate limits. When they
are not set, a process looks for a `petstore dev` (`make run`) running in the same
checkout: that command records where its embedded servers are in
`<PETSTORE_DATA_DIR>/run.json` (see `RunRecord`), so the operator's commands in a second
terminal (`celery -A workers saga ...`, `petstore ...`) find them with no
environment. The environment always wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import click

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_FILE = "run.json"  # in the data folder, written by `petstore dev` while it runs


def data_dir_of(env: Mapping[str, str]) -> Path:
    """The folder for local state: embedded servers' data, uploads, the run file."""
    return Path(env.get("PETSTORE_DATA_DIR", PROJECT_ROOT / ".data"))


def write_private(path: Path, text: str) -> None:
    """Replace the file at once (readers never see half of it), readable by its owner only."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(descriptor, "w") as out:  # mkstemp makes it 0600
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class RunRecord:
    """Where a running `petstore dev` serves: `<data folder>/run.json`, mode 0600.

    `database_url` and `redis_url` are there only for the embedded servers that run started;
    servers given to it through its environment are not written down (their URLs may hold
    passwords), so commands elsewhere need the same variables set.
    """

    pid: int
    api_url: str
    flower_url: str
    database_url: str | None = None
    redis_url: str | None = None

    @staticmethod
    def path(data_dir: Path) -> Path:
        return data_dir / RUN_FILE

    @classmethod
    def read(cls, data_dir: Path) -> RunRecord | None:
        """The record of the run using this data folder, or None when there is none, it is
        unreadable, or its process is gone (a run killed before it could remove it)."""
        try:
            fields = json.loads(cls.path(data_dir).read_text())
            record = cls(**fields)
        except (OSError, ValueError, TypeError):
            return None
        return record if _alive(record.pid) else None

    def write(self, data_dir: Path) -> None:
        write_private(self.path(data_dir), json.dumps(asdict(self), indent=2))

    @classmethod
    def remove(cls, data_dir: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            cls.path(data_dir).unlink()


def _sqlalchemy_url(url: str) -> str:
    """Accept the usual `postgresql://` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _owner(value: str) -> tuple[str, str] | None:
    if not value:
        return None
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise ValueError("PETSTORE_OWNER must look like username:password")
    return username, password


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    broker_url: str
    # RabbitMQ's `consumer_timeout` (its default, 30 minutes): a delivery unacknowledged
    # for longer closes the worker's channel. The broker does not tell its clients.
    rabbitmq_consumer_timeout: float
    # Redis hands a message not acknowledged within this time to another worker.
    visibility_timeout: float
    # The longest a task may run: its process is killed then, and its message re-queued.
    task_time_limit: float
    port: int
    flower_port: int
    owner: tuple[str, str] | None
    data_dir: Path
    upload_dir: Path
    max_upload_bytes: int
    token_ttl_seconds: int
    login_attempts_per_hour: int
    login_failures_per_address: int
    signups_per_hour: int
    max_open_orders: int
    order_hold_seconds: int
    public_url: str
    # Where the owner's browser reaches Flower: a saga's timeline links each task there.
    flower_url: str
    metrics_token: str
    outbox_relay_interval: float
    sweep_interval: float
    order_wait_seconds: float
    retry_scale: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """The settings `env` gives; a URL it lacks comes from a live run file, if any."""
        data_dir = data_dir_of(env)
        database_url, redis_url = env.get("DATABASE_URL", ""), env.get("REDIS_URL", "")
        if not (database_url and redis_url) and (run := RunRecord.read(data_dir)):
            database_url = database_url or run.database_url or ""
            redis_url = redis_url or run.redis_url or ""
        return cls(
            database_url=_sqlalchemy_url(database_url),
            redis_url=redis_url,
            broker_url=env.get("BROKER_URL", "") or redis_url,
            rabbitmq_consumer_timeout=float(env.get("PETSTORE_RABBITMQ_CONSUMER_TIMEOUT",
                                                    "1800")),
            visibility_timeout=float(env.get("PETSTORE_VISIBILITY_TIMEOUT", "3600")),
            task_time_limit=float(env.get("PETSTORE_TASK_TIME_LIMIT", "300")),
            port=int(env.get("PORT", "8000")),
            flower_port=int(env.get("FLOWER_PORT", "5555")),
            owner=_owner(env.get("PETSTORE_OWNER", "owner:owner")),
            data_dir=data_dir,
            upload_dir=Path(env.get("PETSTORE_UPLOAD_DIR", data_dir / "uploads")),
            max_upload_bytes=int(env.get("PETSTORE_MAX_UPLOAD_BYTES", str(5 * 1024 * 1024))),
            token_ttl_seconds=int(env.get("PETSTORE_TOKEN_TTL", "3600")),
            # Failed logins an hour, per (address, username) and per address over all names.
            login_attempts_per_hour=int(env.get("PETSTORE_LOGIN_LIMIT", "20")),
            login_failures_per_address=int(env.get("PETSTORE_LOGIN_ADDRESS_LIMIT", "100")),
            signups_per_hour=int(env.get("PETSTORE_SIGNUP_LIMIT", "20")),
            max_open_orders=int(env.get("PETSTORE_MAX_OPEN_ORDERS", "3")),
            order_hold_seconds=int(env.get("PETSTORE_ORDER_HOLD", str(30 * 60))),
            # Where clients reach the API: photo URLs are built on it, never on `Host`.
            public_url=env.get("PETSTORE_PUBLIC_URL",
                               f"http://127.0.0.1:{env.get('PORT', '8000')}").rstrip("/"),
            flower_url=env.get("PETSTORE_FLOWER_URL",
                               f"http://127.0.0.1:{env.get('FLOWER_PORT', '5555')}").rstrip("/"),
            metrics_token=env.get("PETSTORE_METRICS_TOKEN", ""),
            outbox_relay_interval=float(env.get("PETSTORE_OUTBOX_INTERVAL", "2")),
            sweep_interval=float(env.get("PETSTORE_SWEEP_INTERVAL", "2")),
            order_wait_seconds=float(env.get("PETSTORE_ORDER_WAIT", "5")),
            retry_scale=float(env.get("PETSTORE_RETRY_SCALE", "1")),
        )


class ServerNotFound(click.ClickException, RuntimeError):
    """A server this process needs is configured nowhere.

    Every command line of the project (`petstore`, `celery` and its `saga` plugin) is a
    click program, and click shows this error as one line, `Error: ...`, with exit code 1.
    """


def _not_found(settings: Settings) -> ServerNotFound | None:
    """The error that says which servers are missing and how to point at them, if any."""
    missing = {name: what for name, what, value in (
        ("DATABASE_URL", "database", settings.database_url),
        ("REDIS_URL", "broker", settings.redis_url)) if not value}
    if not missing:
        return None
    names, verb = " and ".join(missing), "is" if len(missing) == 1 else "are"
    run = RunRecord.read(settings.data_dir)
    if run is None:
        why = (f"{names} {verb} not set and no `make run` is running with this data folder "
               f"({RunRecord.path(settings.data_dir)}); start `make run` or set {names}")
    else:  # that run's servers came from its environment, so they are not written down
        why = (f"{names} {verb} not set, and the `make run` running here (PID {run.pid}) "
               f"took {'it' if len(missing) == 1 else 'them'} from its own environment; "
               f"set {names} as it has {'it' if len(missing) == 1 else 'them'}")
    return ServerNotFound(f"no {' and no '.join(missing.values())}: {why}")


@cache
def get_settings() -> Settings:
    """The process's settings; raises `ServerNotFound` unless both servers are known."""
    settings = Settings.from_env()
    if error := _not_found(settings):
        raise error
    return settings
