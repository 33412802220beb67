"""DBOS next to the sagas: a workflow of three steps, each a small transaction that
commits one row in a table of its own, as each saga step commits one business change
(in DBOS 3 a transaction step is a datasource's `@transaction`: there is no
`@DBOS.transaction` any more), with its checkpoint in the same commit.

The benchmark starts this module as a process of its own (as the Celery worker is one):
DBOS on a database of its own on the same server, a queue that runs as many workflows
at once as the Celery worker has processes. The benchmark enqueues workflows with a
DBOSClient, as an API would, and reads when each ended from DBOS's `workflow_status`.
DBOS is left as it runs by default (every commit waits for the disk, its transactions
SERIALIZABLE), but for the queue's polling interval: its default of a second would
measure the poll.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path

import sqlalchemy as sa

from bench.common import ROOT, stop_group

INSTALLED = find_spec("dbos") is not None

APP, QUEUE, WORKFLOW = "petstore-bench", "bench", "bench_order"
DATABASE = "bench_dbos"
TABLES = ("reservations", "orders", "counts")  # one a step
POLLING = 0.01  # seconds between two looks at the queue


def _url(url: str, database: str) -> sa.URL:
    return sa.make_url(url).set(drivername="postgresql+psycopg", database=database)


def database_url(url: str) -> str:
    """The URL of our database on the server of `url`."""
    return _url(url, DATABASE).render_as_string(hide_password=False)


def _drop(server: sa.Engine) -> None:
    with server.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))


@contextmanager
def dbos_database(url: str) -> Iterator[str]:
    """Our database on the server of `url`, with the steps' tables, afresh (an earlier
    run's workflows are not this one's), dropped at the end; yields its URL."""
    server = sa.create_engine(_url(url, "postgres"), isolation_level="AUTOCOMMIT")
    _drop(server)
    with server.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {DATABASE}"))
    ours = sa.create_engine(database_url(url))
    with ours.begin() as connection:
        for table in TABLES:
            connection.execute(sa.text(f"CREATE TABLE {table} (id text PRIMARY KEY)"))
    ours.dispose()
    try:
        yield database_url(url)
    finally:
        _drop(server)
        server.dispose()


class Dbos:
    """The benchmark's side: enqueue workflows, see when they ended."""

    def __init__(self, url: str, process: subprocess.Popen) -> None:
        from dbos import DBOSClient

        self.process = process
        self.client = DBOSClient(system_database_url=url, application_name=APP)
        self.engine = sa.create_engine(url, pool_size=2)

    def enqueue(self, workflow_id: str) -> None:
        self.client.enqueue({"queue_name": QUEUE, "workflow_name": WORKFLOW,
                             "workflow_id": workflow_id}, workflow_id)

    def has_ended(self, workflow_id: str) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT completed_at IS NOT NULL FROM dbos.workflow_status"
                " WHERE workflow_uuid = :id"), {"id": workflow_id}).scalar_one()

    def ended(self, ids: list[str]) -> tuple[int, float]:
        """(these workflows that ended, when the last of them ended as a Unix time)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT status, completed_at FROM dbos.workflow_status"
                " WHERE workflow_uuid = ANY(:ids) AND completed_at IS NOT NULL"),
                {"ids": ids}).all()
        bad = {status for status, _ in rows if status != "SUCCESS"}
        if bad:
            raise RuntimeError(f"DBOS workflows did not succeed: {bad}")
        return len(rows), max((ms / 1000 for _, ms in rows), default=0.0)

    def close(self) -> None:
        self.client.destroy()
        self.engine.dispose()


@contextmanager
def dbos_worker(url: str, concurrency: int, log: Path, polling: float = POLLING
                ) -> Iterator[Dbos]:
    """The DBOS process on the database of `url` (see `dbos_database`), from when it is
    ready: it runs `concurrency` workflows at once."""
    ready = log.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.dbos_workflow", url, str(concurrency),
         str(polling), str(ready)], cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group, to be stopped whole
    dbos = None
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"DBOS did not start: see {log}")
            time.sleep(0.05)
        dbos = Dbos(url, process)
        yield dbos
    finally:
        if dbos:
            dbos.close()
        stop_group(process, grace=30)


def serve(url: str, concurrency: int, polling: float, ready: Path) -> None:
    """DBOS with the workflow and its queue, until SIGTERM."""
    from dbos import DBOS, SQLAlchemyDatasource

    datasource = SQLAlchemyDatasource.create(url)

    def step(table: str) -> Callable[[str], None]:
        @datasource.transaction(name=table)
        def write(key: str) -> None:
            datasource.sql_session().execute(
                sa.text(f"INSERT INTO {table} (id) VALUES (:id)"), {"id": key})
        return write

    steps = [step(table) for table in TABLES]

    @DBOS.workflow(name=WORKFLOW)
    def order(key: str) -> None:
        for write in steps:
            write(key)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    DBOS(config={"name": APP, "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=concurrency or None,
                        polling_interval_sec=polling)
    ready.touch()
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=5)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))
