"""The Celery application: one queue per service, late acks, JSON, events for Flower.

Its configuration is lazy: `config()` runs when Celery first needs it (to reach the broker,
to start a worker), not when the app is imported. So `celery -A workers --help` and the
`saga` commands load with no servers configured, and a command that must reach a server
says which one it could not find (`common.settings.ServerNotFound`).
"""

from __future__ import annotations

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


def config() -> dict[str, Any]:
    """The app's settings, read when Celery first needs them; needs both servers' URLs."""
    settings = get_settings()
    # Redis re-delivers a message not acked within this time: keep every step far shorter.
    transport = {"visibility_timeout": 3600}
    return {
        "broker_url": settings.redis_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Each queue bound by its own name: a queue left to the defaults would bind to the
        # default exchange and key, and every queue would receive every message.
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
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
