"""`make run` on embedded servers, seen from a second terminal of the same checkout.

The second terminal has no DATABASE_URL or REDIS_URL: the operator's commands find the
running system's servers through its run file, and a second start says that the system
already runs and touches nothing of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from petstore.embedded import free_port
from tests.e2e.test_start_command import call
from tests.support.processes import stop_group
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # starts the whole system


@pytest.fixture(scope="module")
def terminal(tmp_path_factory) -> dict[str, str]:
    """A terminal's environment in this checkout: no server URLs, the system's data folder,
    free ports for everything a start would open."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "PETSTORE_DATA_DIR": str(tmp_path_factory.mktemp("checkout") / ".data"),
            "PETSTORE_REDIS_PORT": str(free_port()), "PORT": str(free_port()),
            "FLOWER_PORT": str(free_port())}


@pytest.fixture(scope="module")
def system(tmp_path_factory, terminal):
    """`petstore dev` on embedded servers, started in the first terminal."""
    log = (tmp_path_factory.mktemp("system") / "system.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "petstore", "dev"], env=terminal,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{terminal['PORT']}/v2"
        eventually(lambda: call(f"{base}/store/inventory")[0] == 200, timeout=90, interval=0.5)
        yield process
    finally:
        stop_group(process, grace=60)
        log.close()


def run(terminal: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=terminal, capture_output=True, text=True, timeout=120)


def run_record(terminal: dict[str, str]) -> dict:
    return json.loads((Path(terminal["PETSTORE_DATA_DIR"]) / "run.json").read_text())


def test_the_run_file_says_where_the_system_and_its_embedded_servers_are(system, terminal):
    record = run_record(terminal)
    assert record["pid"] == system.pid
    assert record["api_url"] == f"http://127.0.0.1:{terminal['PORT']}/v2"
    assert record["flower_url"] == f"http://127.0.0.1:{terminal['FLOWER_PORT']}"
    assert record["redis_url"] == f"redis://127.0.0.1:{terminal['PETSTORE_REDIS_PORT']}/0"
    assert record["database_url"].startswith("postgresql://")


def test_the_operators_commands_find_the_servers_with_no_environment(system, terminal):
    listed = run(terminal, sys.executable, "-m", "celery", "-A", "workers", "saga", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("ID")
    migrated = run(terminal, sys.executable, "-m", "petstore", "migrate")
    assert migrated.returncode == 0, migrated.stderr


def test_a_second_start_says_the_system_already_runs_and_leaves_it_working(system, terminal):
    before = run_record(terminal)
    second = run(terminal, sys.executable, "-m", "petstore", "dev")
    assert second.returncode != 0
    assert "already runs" in second.stderr
    assert f"PID {system.pid}" in second.stderr
    assert before["api_url"] in second.stderr
    assert "embedded PostgreSQL" not in second.stdout  # it started nothing

    assert system.poll() is None
    assert run_record(terminal) == before
    assert call(f"{before['api_url']}/store/inventory")[0] == 200
    with psycopg.connect(before["database_url"], connect_timeout=10) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert redis.Redis.from_url(before["redis_url"], socket_timeout=10).ping()
    listed = run(terminal, sys.executable, "-m", "celery", "-A", "workers", "saga", "list")
    assert listed.returncode == 0, listed.stderr


def test_stopping_the_system_removes_its_run_file(system, terminal):
    os.killpg(system.pid, signal.SIGTERM)
    assert system.wait(60) == 0
    assert not (Path(terminal["PETSTORE_DATA_DIR"]) / "run.json").exists()
    # The servers are gone with it: a command now says so instead of waiting for them.
    listed = run(terminal, sys.executable, "-m", "celery", "-A", "workers", "saga", "list")
    assert listed.returncode == 1
    assert "no `make run` is running with this data folder" in listed.stderr
