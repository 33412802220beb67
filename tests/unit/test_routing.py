"""Each service's tasks reach its own queue, and only that queue."""

from __future__ import annotations

import pytest

from workers.celery_app import QUEUES, app, broker_config, countdown


def test_every_queue_is_bound_by_its_own_name():
    bindings = {(q.exchange.name, q.routing_key) for q in app.amqp.queues.values()}
    assert bindings == {(name, name) for name in QUEUES}


@pytest.mark.parametrize(("task", "queue"), [
    ("pets.reserve_pet", "pets"), ("orders.place_order", "orders"),
    ("inventory.reserve_stock", "inventory"), ("photos.create_photos", "photos"),
    ("sagas.sweep", "sagas"), ("outbox.relay", "sagas"),
])
def test_a_task_is_routed_to_its_services_queue_alone(task, queue):
    route = app.amqp.router.route({}, task)
    assert route["queue"].name == queue
    assert (route["queue"].exchange.name, route["queue"].routing_key) == (queue, queue)


def test_on_rabbitmq_each_queue_is_a_quorum_queue_on_a_topic_exchange_and_publishes_confirm():
    config = broker_config("amqp://guest:guest@rabbit:5672//")
    assert {(q.name, q.exchange.type, q.queue_arguments["x-queue-type"])
            for q in config["task_queues"]} == {(name, "topic", "quorum") for name in QUEUES}
    assert config["broker_transport_options"] == {"confirm_publish": True}


def test_on_redis_a_message_waits_an_hour_for_its_acknowledgement_by_default():
    config = broker_config("redis://cache:6379/0")
    assert config["broker_transport_options"] == {"visibility_timeout": 3600}
    assert {q.exchange.type for q in config["task_queues"]} == {"direct"}


@pytest.mark.parametrize(("seconds", "on_redis", "on_rabbitmq"), [
    (0.01, 0.01, 1), (1.0, 1.0, 1), (2.3, 2.3, 3)])
def test_rabbitmq_delays_a_retry_by_whole_seconds(monkeypatch, seconds, on_redis, on_rabbitmq):
    monkeypatch.setitem(app.conf, "broker_url", "redis://cache:6379/0")
    assert countdown(seconds) == on_redis
    monkeypatch.setitem(app.conf, "broker_url", "amqp://guest:guest@rabbit:5672//")
    assert countdown(seconds) == on_rabbitmq
