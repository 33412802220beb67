"""Settings that would lose or repeat work are refused, each with the reason and the fix.

The checks read a Celery configuration as the project builds it (`broker_config`), with
one thing changed at a time; the settings come from a plain dict standing in for the
environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from celery import Celery
from kombu import Exchange, Queue

from common.settings import Settings
from sagas.registry import registered
from workers import guardrails
from workers.celery_app import app, broker_config

REDIS, RABBITMQ = "redis://cache:6379/0", "amqp://guest:guest@rabbit:5672//"


def settings(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": "postgresql://db/petstore",
                              "REDIS_URL": "redis://cache:6379/0", **env})


def conf(broker: str = REDIS, **changed: Any) -> Mapping[str, Any]:
    """The project's Celery settings for this broker, with `changed` on top."""
    made = Celery(set_as_current=False)
    made.conf.update({**broker_config(broker), "task_time_limit": 300, "task_acks_late": True,
                      "task_reject_on_worker_lost": True, **changed})
    return made.conf


def found(configuration: Mapping[str, Any], environment: Settings | None = None) -> list[str]:
    """What the configuration checks find, the live Redis one aside."""
    definitions = registered()
    return [problem for check in guardrails.CHECKS
            if (problem := check(configuration, environment or settings(), definitions))]


@pytest.fixture(autouse=True)
def step_tasks():
    app.loader.import_default_modules()


@pytest.mark.parametrize("broker", [REDIS, RABBITMQ])
def test_the_projects_own_settings_pass(broker):
    assert found(conf(broker)) == []


def test_a_visibility_timeout_shorter_than_a_countdown_and_a_run_is_refused():
    # Steps back off up to 30 s, tasks run up to 300 s: 330 s unacknowledged at worst.
    (problem,) = found(conf(broker_transport_options={"visibility_timeout": 320}))
    assert problem.startswith("Redis' visibility timeout (320 s) is not longer than")
    assert "broker_transport_options['visibility_timeout']" in problem
    assert found(conf(broker_transport_options={"visibility_timeout": 331})) == []


def test_retries_stretched_past_the_visibility_timeout_are_refused():
    (problem,) = found(conf(), settings(PETSTORE_RETRY_SCALE="200"))  # backoffs to 6000 s
    assert "a countdown of up to 6000 s" in problem


def test_no_task_time_limit_is_refused():
    (problem,) = found(conf(task_time_limit=None))
    assert problem.startswith("task_time_limit is not set")


def test_a_result_backend_with_another_visibility_timeout_is_refused():
    backend = {"result_backend": "redis://cache:6379/1"}
    (problem,) = found(conf(**backend, result_backend_transport_options={
        "visibility_timeout": 7200}))
    assert "the broker (3600 s" in problem and "the result backend (7200 s" in problem
    assert found(conf(**backend, result_backend_transport_options={
        "visibility_timeout": 3600})) == []


@pytest.mark.parametrize(("acks_late", "requeued"), [(False, True), (True, False)])
def test_a_step_not_acknowledged_late_and_requeued_is_refused(monkeypatch, acks_late,
                                                               requeued):
    task = app.tasks["pets.reserve_pet"]
    monkeypatch.setattr(task, "acks_late", acks_late)
    monkeypatch.setattr(task, "reject_on_worker_lost", requeued)
    (problem,) = found(conf())
    assert problem.startswith("saga steps must be acknowledged late")
    assert (f"pets.reserve_pet (acks_late={acks_late}, reject_on_worker_lost={requeued})"
            in problem)


def test_a_step_whose_crashes_the_engine_does_not_count_is_refused(monkeypatch):
    monkeypatch.setattr(app.tasks["orders.place_order"], "counts_crashes", False)
    (problem,) = found(conf())
    assert "orders.place_order (not run through the engine, which counts crashes)" in problem


def test_a_rabbitmq_consumer_timeout_shorter_than_a_task_is_refused():
    (problem,) = found(conf(RABBITMQ), settings(PETSTORE_RABBITMQ_CONSUMER_TIMEOUT="240"))
    assert problem.startswith("RabbitMQ's consumer timeout (240 s")
    assert "(300 s, task_time_limit, PETSTORE_TASK_TIME_LIMIT)" in problem


def test_quorum_queues_on_direct_exchanges_are_refused():
    queues = [Queue("pets", Exchange("pets"), routing_key="pets",
                    queue_arguments={"x-queue-type": "quorum"})]
    (problem,) = found(conf(RABBITMQ, task_queues=queues))
    assert problem.startswith("quorum queues without native delayed delivery")
    assert "their exchanges are direct (pets)" in problem


def test_quorum_queues_with_quorum_detection_off_are_refused():
    (problem,) = found(conf(RABBITMQ, worker_detect_quorum_queues=False))
    assert "worker_detect_quorum_queues is off" in problem


def test_redis_only_checks_leave_rabbitmq_alone():
    assert found(conf(RABBITMQ, broker_transport_options={"visibility_timeout": 1})) == []
