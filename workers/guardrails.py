"""Settings that would lose or repeat work, refused before a worker or the API serves.

Celery runs with settings that quietly lose or repeat messages: a Redis visibility
timeout shorter than a message may wait unacknowledged (Redis hands it to a second
worker), an evicting Redis (queued messages vanish), late acks without re-queueing on a
lost worker, a RabbitMQ consumer timeout shorter than a task may run (RabbitMQ closes the
worker's channel), quorum queues without native delayed delivery (countdowns held in
workers that cannot raise their prefetch). Each check names the setting and what to do.
The worker runs them as a bootstep (`RefuseUnsafeSettings`), the API as gunicorn starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click
import redis
from celery import Celery, bootsteps
from kombu import Queue

from common.settings import Settings, get_settings
from sagas.definition import SagaDefinition
from sagas.registry import registered
from workers.celery_app import ServiceTask, app, is_rabbitmq

log = logging.getLogger(__name__)
Check = Callable[[Mapping[str, Any], Settings, list[SagaDefinition]], str | None]
DEFAULT_VISIBILITY = 3600  # Redis' own, when none is set


class UnsafeSettings(click.ClickException, RuntimeError):
    """The settings would lose or repeat work; the message lists why. A click error: the
    worker's command line (and the API's start) shows it as `Error: ...`, exit code 1."""


def _longest_countdown(settings: Settings, definitions: list[SagaDefinition]) -> float:
    """The longest a retry waits: a step's backoff ceiling, or a task's own retries'."""
    steps = [s for d in definitions for s in d.steps]
    backoffs = [r.max_backoff * settings.retry_scale
                for s in steps for r in (s.retry, s.compensation_retry)]
    return max([*backoffs, ServiceTask.retry_backoff_max])


def _longest_timeout(definitions: list[SagaDefinition]) -> float:
    return max(s.timeout for d in definitions for s in d.steps)


def no_time_limit(conf: Mapping[str, Any], settings: Settings,
                  definitions: list[SagaDefinition]) -> str | None:
    if not conf.get("task_time_limit"):
        return ("task_time_limit is not set (PETSTORE_TASK_TIME_LIMIT): a task that never "
                "ends holds its message for ever, and no broker timeout can be set above it")
    return None


def redis_visibility(conf: Mapping[str, Any], settings: Settings,
                     definitions: list[SagaDefinition]) -> str | None:
    """A worker holds a retry's message unacknowledged through its countdown and its run."""
    if is_rabbitmq(conf["broker_url"]) or not conf.get("task_time_limit"):
        return None
    visibility = _visibility(conf.get("broker_transport_options"))
    countdown, limit = _longest_countdown(settings, definitions), conf["task_time_limit"]
    timeout = _longest_timeout(definitions)
    if visibility > max(countdown + limit, timeout):
        return None
    return (f"Redis' visibility timeout ({visibility:g} s) is not longer than a message may "
            f"wait unacknowledged: a countdown of up to {countdown:g} s then a run of up to "
            f"{limit:g} s (task_time_limit, PETSTORE_TASK_TIME_LIMIT), or a step's timeout "
            f"of {timeout:g} s; Redis would hand it to a second worker. Raise "
            "PETSTORE_VISIBILITY_TIMEOUT (broker_transport_options['visibility_timeout'])")


def result_visibility(conf: Mapping[str, Any], settings: Settings,
                      definitions: list[SagaDefinition]) -> str | None:
    """Celery's Redis result backend reads its own copy of the visibility timeout."""
    backend = conf.get("result_backend") or ""
    if is_rabbitmq(conf["broker_url"]) or not backend.startswith(("redis", "rediss")):
        return None
    broker = _visibility(conf.get("broker_transport_options"))
    result = _visibility(conf.get("result_backend_transport_options"))
    if broker == result:
        return None
    return (f"the visibility timeout differs between the broker ({broker:g} s, "
            f"broker_transport_options) and the result backend ({result:g} s, "
            "result_backend_transport_options): set both alike")


def late_acks(conf: Mapping[str, Any], settings: Settings,
              definitions: list[SagaDefinition]) -> str | None:
    """A step's message is acknowledged after its work; a crash re-queues it, and the
    engine counts that delivery against the step's attempts, so a step that kills its
    worker ends failed instead of being delivered for ever."""
    unsafe = []
    for name in sorted({n for d in definitions for s in d.steps
                        for n in (s.action, s.compensation) if n}):
        task = app.tasks.get(name)
        if task is None:
            continue  # `saga check` reports a step no worker defines
        if not (task.acks_late and task.reject_on_worker_lost):
            unsafe.append(f"{name} (acks_late={task.acks_late}, "
                          f"reject_on_worker_lost={task.reject_on_worker_lost})")
        elif not getattr(task, "counts_crashes", False):
            unsafe.append(f"{name} (not run through the engine, which counts crashes)")
    if not unsafe:
        return None
    return ("saga steps must be acknowledged late, re-queued when their worker is lost "
            "and counted by the engine (workers.steps.saga_step), or a crash loses the "
            "step or repeats it for ever: " + ", ".join(unsafe))


def consumer_timeout(conf: Mapping[str, Any], settings: Settings,
                     definitions: list[SagaDefinition]) -> str | None:
    limit = conf.get("task_time_limit")
    if not is_rabbitmq(conf["broker_url"]) or not limit:
        return None
    if settings.rabbitmq_consumer_timeout > limit:
        return None
    return (f"RabbitMQ's consumer timeout ({settings.rabbitmq_consumer_timeout:g} s, "
            f"PETSTORE_RABBITMQ_CONSUMER_TIMEOUT, as the server's consumer_timeout) is not "
            f"longer than a task may run ({limit:g} s, task_time_limit, "
            "PETSTORE_TASK_TIME_LIMIT): RabbitMQ would close the worker's channel and deliver "
            "the message again")


def quorum_without_delayed_delivery(conf: Mapping[str, Any], settings: Settings,
                                    definitions: list[SagaDefinition]) -> str | None:
    if not is_rabbitmq(conf["broker_url"]):
        return None
    queues: Iterable[Queue] = conf.get("task_queues") or ()
    quorum = [q for q in queues if (q.queue_arguments or {}).get("x-queue-type") == "quorum"]
    direct = [q.name for q in quorum if q.exchange.type == "direct"]
    if not quorum or (conf.get("worker_detect_quorum_queues") and not direct):
        return None
    why = (f"their exchanges are direct ({', '.join(direct)}); make them topic exchanges"
           if direct else "worker_detect_quorum_queues is off")
    return ("quorum queues without native delayed delivery: a countdown would wait in a "
            f"worker that cannot raise its prefetch for it, because {why}")


CHECKS: tuple[Check, ...] = (no_time_limit, redis_visibility, result_visibility, late_acks,
                             consumer_timeout, quorum_without_delayed_delivery)


def redis_eviction(url: str) -> str | None:
    """Asked of the server: an evicting Redis drops queued messages under memory pressure.
    A server that hides its configuration (some hosted ones) cannot be checked, nor one
    that is down: a worker starts anyway and waits for its broker, as Celery's do."""
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5) as client:
        try:
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError:
            return None
        except redis.RedisError as error:
            log.warning("could not ask Redis for its maxmemory-policy: %s", error)
            return None
    if policy in (None, "noeviction"):
        return None
    return (f"the Redis broker evicts keys under memory pressure (maxmemory-policy "
            f"{policy}), queued messages among them: set maxmemory-policy noeviction")


def problems(conf: Mapping[str, Any], settings: Settings,
             definitions: list[SagaDefinition] | None = None) -> list[str]:
    """What in these settings would lose or repeat work, each in a sentence."""
    definitions = registered() if definitions is None else definitions
    found = [check(conf, settings, definitions) for check in CHECKS]
    if not is_rabbitmq(conf["broker_url"]):
        found.append(redis_eviction(conf["broker_url"]))
    return [problem for problem in found if problem]


def refuse_unsafe(app: Celery) -> None:
    """Raise UnsafeSettings, naming every problem, if there is any."""
    app.loader.import_default_modules()  # the step tasks, whose acks the checks read
    found = problems(app.conf, get_settings())
    if found:
        raise UnsafeSettings("unsafe settings refused:\n" + "\n".join(f"- {p}" for p in found))


def _visibility(options: Mapping[str, Any] | None) -> float:
    return float((options or {}).get("visibility_timeout", DEFAULT_VISIBILITY))


class RefuseUnsafeSettings(bootsteps.Step):
    """A worker bootstep: the worker does not start on unsafe settings."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        refuse_unsafe(worker.app)
        super().__init__(worker, **kwargs)


app.steps["worker"].add(RefuseUnsafeSettings)
