"""The Celery application: one queue per service, late acks, JSON, events for Flower.

Its configuration is lazy: `config()` runs when Celery first needs it (to reach the broker,
to start a worker), not when the app is imported. So `celery -A workers --help` and the
`saga` commands load with no servers configured, and a command that must reach a server
says which one it could not find (`common.settings.ServerNotFound`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init, worker_process_init
from kombu import Exchange, Queue
from sqlalchemy.exc import InterfaceError, OperationalError

from common import tracing
from common.settings import get_settings
from models.db import check_connections_before_use

QUEUES = ("pets", "photos", "orders", "inventory", "sagas")
# What beat runs every few seconds. Flower's task list and the workers' logs are for saga
# steps, not for these: they send no task events, beat sends none for them (`_quiet_beat`),
# and Celery's routine lines about them are left out of the logs (`workers.logs`). What one
# of them does, it logs itself; its failures are logged as any task's.
HOUSEKEEPING = ("outbox.relay", "sagas.sweep", "orders.expire_holds", "sagas.fold_counters")
# Task names are `service.action`; the service's name picks its queue.
ROUTES = {
    "pets.*": {"queue": "pets"},
    "photos.*": {"queue": "photos"},
    "orders.*": {"queue": "orders"},
    "inventory.*": {"queue": "inventory"},
    "sagas.*": {"queue": "sagas"},
    "outbox.*": {"queue": "sagas"},
}
TASK_MODULES = ["workers.pets", "workers.photos", "workers.orders", "workers.inventory",
                "workers.sagas", "workers.relay"]


def is_rabbitmq(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def broker_config(broker_url: str, visibility_timeout: float = 3600) -> dict[str, Any]:
    """What the broker at `broker_url` needs. Each queue is bound by its own name: a queue
    left to the defaults would bind to the default exchange and key, and every queue would
    receive every message."""
    if not is_rabbitmq(broker_url):
        return {
            "broker_url": broker_url,
            # Redis re-delivers a message not acked within this time, and a worker holds a
            # retry's message unacked until its countdown ends (`workers.guardrails`).
            "broker_transport_options": {"visibility_timeout": visibility_timeout},
            "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        }
    # Quorum queues, replicated and kept on disk; a countdown waits in the broker (native
    # delayed delivery, which routes through topic exchanges), not unacked in a worker;
    # every publish confirmed by the broker before it counts as sent.
    return {
        "broker_url": broker_url,
        "broker_transport_options": {"confirm_publish": True},
        "task_queues": [Queue(name, Exchange(name, type="topic"), routing_key=name,
                              queue_arguments={"x-queue-type": "quorum"}) for name in QUEUES],
        "task_default_exchange_type": "topic",
        "task_default_queue_type": "quorum",
    }


def config() -> dict[str, Any]:
    """The app's settings, read when Celery first needs them; needs both servers' URLs."""
    settings = get_settings()
    return {
        **broker_config(settings.broker_url, settings.visibility_timeout),
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Past it, a task's process is killed and its message re-queued
        # (`task_reject_on_worker_lost`), a crash the engine counts against the step.
        "task_time_limit": settings.task_time_limit,
        "task_default_queue": "sagas",
        "task_routes": ROUTES,
        # A task that crashes its process is re-queued, never lost.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Flower sees only events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "enable_utc": True,
        "beat_schedule": {
            "relay-outbox": {"task": "outbox.relay", "schedule": settings.outbox_relay_interval},
            "sweep-sagas": {"task": "sagas.sweep", "schedule": settings.sweep_interval},
            # Placed orders whose hold lapsed: an indexed read when none has.
            "expire-order-holds": {"task": "orders.expire_holds",
                                   "schedule": settings.sweep_interval},
            # Keeps the metrics' counter tables short when nobody scrapes them.
            "fold-saga-counters": {"task": "sagas.fold_counters", "schedule": 60.0},
        },
    }


class ServiceTask(Task):
    """A service's task: a lost database connection or a deadlock is retried with backoff.

    Every task is idempotent, so a retry or a second delivery changes nothing twice.
    """

    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = True
    retry_backoff_max = 30
    retry_jitter = True
    max_retries = 8


app = Celery("petstore", include=TASK_MODULES, task_cls=ServiceTask)
# A promise: Celery calls `config` the first time its configuration is read.
app.add_defaults(config)


def countdown(seconds: float) -> float:
    """A retry's wait as this broker can keep it. RabbitMQ delays a message by whole seconds
    (native delayed delivery), and Celery routes a wait under one second to no delay it can
    name (its message is rejected): there, a wait is rounded up to whole seconds."""
    return math.ceil(seconds) if is_rabbitmq(app.conf.broker_url) else seconds


def messages_waiting(queue: str) -> int:
    """Messages waiting in the queue, not those a worker holds, as the broker (any) answers
    a passive declare; 0 when there is no such queue yet. Raises the broker's connection
    errors."""
    with app.connection_for_read() as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue,
                                                            passive=True).message_count
        except connection.channel_errors:
            return 0


def housekeeping(name: str) -> Callable[[Callable[..., Any]], Task]:
    """A periodic task of HOUSEKEEPING: no events, no result."""
    assert name in HOUSEKEEPING, name
    return app.task(name=name, ignore_result=True, send_events=False)


@beat_init.connect
def _quiet_beat(sender: Any, **_: Any) -> None:
    """Beat publishes nothing but housekeeping: no `task-sent` events for Flower."""
    sender.app.conf.task_send_sent_event = False


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked child must not share its parent's database connections; its tasks are
    retried on a broken one, so it need not check each before use."""
    check_connections_before_use(False)
    tracing.setup("petstore-workers")
