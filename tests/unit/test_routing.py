"""Each service's tasks reach its own queue, and only that queue."""

from __future__ import annotations

import pytest

from workers.celery_app import QUEUES, app


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
