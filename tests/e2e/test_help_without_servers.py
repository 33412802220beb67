"""The operator's commands load anywhere: no servers, no environment, no `make run`.

Only a command that must reach a server fails, in one line that says which server it could
not find and how to point it there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CELERY = [sys.executable, "-m", "celery"]
PETSTORE = [sys.executable, "-m", "petstore"]


@pytest.fixture
def nowhere(tmp_path: Path):
    """Runs a command in an empty folder, with an empty data folder and no server URLs."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL")}
    env["PETSTORE_DATA_DIR"] = str(tmp_path / "data")

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)

    return run


@pytest.mark.parametrize("command", [
    [*CELERY, "--help"],
    [*CELERY, "-A", "workers", "--help"],
    [*CELERY, "-A", "workers", "saga", "--help"],
    [*CELERY, "-A", "workers", "saga", "retry", "--help"],
    [*CELERY, "-A", "workers", "worker", "--help"],
    [*PETSTORE, "--help"],
    [*PETSTORE, "dev", "--help"],
], ids=" ".join)
def test_help_works_with_no_servers_and_no_environment(nowhere, command):
    result = nowhere(*command)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "could not load" not in result.stdout + result.stderr
    assert result.stderr == ""


def test_the_celery_command_lists_the_saga_commands(nowhere):
    result = nowhere(*CELERY, "-A", "workers", "--help")
    assert "List, show, retry, compensate and abort sagas." in result.stdout
    saga = nowhere(*CELERY, "-A", "workers", "saga", "--help")
    for command in ("list", "show", "retry", "compensate", "abort"):
        assert f"  {command} " in saga.stdout


@pytest.mark.parametrize("command", [
    [*CELERY, "-A", "workers", "saga", "list"],
    [*CELERY, "-A", "workers", "saga", "retry", "00000000-0000-0000-0000-000000000000"],
    [*PETSTORE, "migrate"],
], ids=" ".join)
def test_a_command_that_needs_the_servers_says_in_one_line_which_and_how(nowhere, command):
    result = nowhere(*command)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert result.stderr.startswith("Error: no database and no broker: "
                                    "DATABASE_URL and REDIS_URL are not set")
    assert "start `make run` or set DATABASE_URL and REDIS_URL" in result.stderr
