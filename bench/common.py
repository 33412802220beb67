"""What the benchmarks share: servers, a fresh schema, a worker, percentiles."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def servers() -> Iterator[dict[str, str]]:
    """DATABASE_URL / REDIS_URL when set; else embedded servers in a temporary folder."""
    work = Path(tempfile.mkdtemp(prefix="petstore-bench-"))
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        env = {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}
        embedded = None
    else:
        from petstore.embedded import EmbeddedServers, free_port

        embedded = EmbeddedServers(work / "servers", redis_port=free_port()).start()
        env = {"DATABASE_URL": embedded.database_url, "REDIS_URL": embedded.redis_url}
    env["PETSTORE_DATA_DIR"] = str(work)
    # The benchmarks order as one customer: the per-customer limit would refuse them.
    env["PETSTORE_MAX_OPEN_ORDERS"] = str(10**9)
    os.environ.update(env)
    subprocess.run([sys.executable, "-m", "petstore", "migrate"], check=True,
                   env={**os.environ}, stdout=subprocess.DEVNULL)
    passed = False
    try:
        yield env
        passed = True
    finally:
        if embedded:
            embedded.stop()
        if passed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs and data kept in {work}", file=sys.stderr)


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """Stop a process started in a session of its own, and all it started: SIGTERM to its
    group, SIGKILL after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextmanager
def worker(concurrency: int, log: Path, queues: str = "pets,photos,orders,inventory,sagas"
           ) -> Iterator[subprocess.Popen]:
    """A prefork worker on every queue, with the baseline's tasks too, until it answers."""
    from workers.celery_app import app

    name = f"bench-{os.getpid()}@localhost"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "--queues", queues,
         "--include", "bench.noop", "--concurrency", str(concurrency), "--hostname", name,
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=ROOT, env={**os.environ}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group, to be killed whole
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[name], timeout=0.5):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"worker did not start: see {log}")
        yield process
    finally:  # SIGKILL after 30 s: it may be busy with a backlog it need not finish
        stop_group(process, grace=30)


def _server_tree(pid: int, name: str) -> list[psutil.Process]:
    """The server process `pid` and its children, if it runs here (a server on another
    machine reports a pid that means nothing here)."""
    try:
        server = psutil.Process(pid)
        if name not in server.name():
            return []
        return [server, *server.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres_processes() -> list[psutil.Process]:
    """The PostgreSQL server's processes: the postmaster and its backends."""
    from sqlalchemy import text

    from models.db import one_statement

    with one_statement() as connection:
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        postmaster = psutil.Process(backend).ppid()
    except psutil.NoSuchProcess:  # a server on another machine
        return []
    return _server_tree(postmaster, "postgres")


def redis_processes() -> list[psutil.Process]:
    import redis

    server = redis.Redis.from_url(os.environ["REDIS_URL"]).info("server")
    return _server_tree(server["process_id"], "redis")


class CpuMeter:
    """Where the machine's CPU time goes, by the processes a run uses: the worker's main
    process (it takes messages from the broker and hands them to its pool), its pool
    processes (the tasks), PostgreSQL, Redis, and this benchmark (the callers)."""

    def __init__(self, worker_pid: int) -> None:
        self.worker_pid = worker_pid

    def _processes(self) -> dict[str, list[psutil.Process]]:
        main = psutil.Process(self.worker_pid)
        return {"worker main process": [main], "worker pool processes": main.children(),
                "PostgreSQL": postgres_processes(), "Redis": redis_processes(),
                "benchmark (callers)": [psutil.Process()]}

    @staticmethod
    def _seconds(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:  # a backend that ended: its time is not counted
                continue
            total += times.user + times.system
        return total

    @contextmanager
    def per_run(self, runs: int) -> Iterator[dict[str, float]]:
        """Milliseconds of CPU per run, by process kind, of the work done inside."""
        processes = self._processes()  # PostgreSQL's backends are the pools' by now
        before = {kind: self._seconds(group) for kind, group in processes.items()}
        figures: dict[str, float] = {}
        yield figures
        for kind, group in processes.items():
            figures[kind] = 1000 * (self._seconds(group) - before[kind]) / runs
        figures["all"] = sum(figures.values())


def report(results: dict[str, Any], json_path: Path | None) -> None:
    """Print the figures as a table, and write them as JSON when asked."""
    width = max(map(len, results))
    for name, value in results.items():
        print(f"{name:<{width}}  {value}")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "mean": statistics.fmean(values) if values else 0}
