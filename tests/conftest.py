"""The whole suite's hooks, and the fixtures the integration and e2e layers share.

Every run gets a work folder (tests/support/servers.py), removed when the run passes and
kept when it fails, with the run's temporary folder (TMPDIR) in it, and a TEST_RUN_ID in
its environment that the processes it starts inherit. At the very end, once the servers
are stopped, a process still carrying it or anything in the temporary folder fails the
run. The servers themselves start only for the layers that need them (the conftest.py of
tests/integration and of tests/e2e), so tests/unit runs with none.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import processes, servers

RUN_MARK = "TEST_RUN_ID"  # no PETSTORE_ prefix: tests that drop those must keep it
PASSED = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
LEFT_BEHIND = pytest.StashKey[list[str]]()
KEPT = pytest.StashKey[Path]()
FINISHED = pytest.StashKey[bool]()

# Hypothesis runs the same examples on every run and machine, without a deadline.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_MARK] = uuid.uuid4().hex
    servers.open_run(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if reason := servers.skipped():
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(trylast=True)  # after every fixture's teardown
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    left = _finish(config, session.exitstatus in PASSED)
    if left:
        config.stash[LEFT_BEHIND] = left
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    _finish(config, passed=True)  # when no session ran (--help, --markers): no-op otherwise


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if left := config.stash.get(LEFT_BEHIND, []):
        terminalreporter.write_sep("=", "the run left these behind, so it fails", red=True)
        for line in left:
            terminalreporter.write_line(line)
    if kept := config.stash.get(KEPT, None):
        terminalreporter.write_line(f"The run failed: its work folder is kept in {kept}",
                                    yellow=True)


def _finish(config: pytest.Config, passed: bool) -> list[str]:
    """Stop the servers, list what the run left behind (processes, killed here, and
    entries of its temporary folder) and remove the work folder unless the run failed."""
    if config.stash.get(FINISHED, False):
        return []
    config.stash[FINISHED] = True
    left = _stop_servers()
    running = processes.marked(RUN_MARK, os.environ[RUN_MARK])
    left += [f"process {processes.describe(process)} (killed)" for process in running]
    processes.kill(running)
    left += [f"temporary {path}" for path in sorted(servers.temp_folder().iterdir())]
    if kept := servers.close_run(passed and not left):
        config.stash[KEPT] = kept
    return left


def _stop_servers() -> list[str]:
    try:
        servers.stop()
    except Exception as error:  # reported with the leftovers, whose checks still run
        return [f"the servers' teardown failed: {error!r}"]
    return []


@pytest.fixture(scope="module")
def worker():
    """A real Celery worker with beat, consuming every queue, for the test module."""
    from tests.support.worker import WorkerProcess

    process = WorkerProcess(servers.work_folder() / "worker.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def app():
    from common.settings import get_settings
    from models.db import unit_of_work
    from models.user import ensure_owner
    from web import create_app

    with unit_of_work() as session:
        ensure_owner(session, *get_settings().owner)
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def _login(client, username: str, password: str) -> dict[str, str]:
    response = client.get("/v2/user/login", query_string={"username": username,
                                                          "password": password})
    assert response.status_code == 200, response.json
    return {"api_key": response.json}


@pytest.fixture(scope="session")
def owner(app) -> dict[str, str]:
    """Headers that authenticate the store owner."""
    from common.settings import get_settings

    return _login(app.test_client(), *get_settings().owner)


@pytest.fixture
def sign_up(client):
    """Create a customer with a random name; returns (username, password, headers)."""

    def create() -> tuple[str, str, dict[str, str]]:
        username, password = f"user{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        response = client.post("/v2/user", json={"username": username, "password": password})
        assert response.status_code == 200, response.json
        return username, password, _login(client, username, password)

    return create


@pytest.fixture
def customer(sign_up) -> dict[str, str]:
    """Headers that authenticate a fresh customer."""
    return sign_up()[2]
