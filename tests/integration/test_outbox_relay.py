"""The outbox relay, as the broker and the outbox's rows show it: what it publishes, what it
marks sent, and what it leaves to others (a saga's command to its receiver, a message the
broker refused to the periodic relay)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery.utils.saferepr import saferepr
from kombu.message import Message
from sqlalchemy import delete, func, select, update

from models.db import unit_of_work, utcnow
from models.events import PetCreated, PetReserved
from models.outbox import COMMAND, EVENT, OutboxMessage, publish, send_command, send_task
from tests.support.broker import broker_down
from workers import relay
from workers.celery_app import QUEUES
from workers.celery_app import app as celery

pytestmark = pytest.mark.broker

NAMES = ("photos.create_photos", "pets.reserve_pet", PetCreated.type, PetReserved.type)


@contextmanager
def taken() -> Iterator[list[tuple[str, Message]]]:
    """Every message waiting in a service queue, taken unacknowledged on a channel of its
    own: (queue, message). Those left unacknowledged go back to their queues as the channel
    closes, whichever the broker."""
    with celery.connection_for_write() as connection, connection.channel() as channel:
        found = []
        for name in QUEUES:
            queue = celery.amqp.queues[name].bind(channel)
            queue.declare()  # as the workers declare it: a broker may not have it yet
            while (message := queue.get(no_ack=False, accept=["json"])) is not None:
                found.append((name, message))
        yield found


def queued() -> list[tuple[str, dict, dict]]:
    """Every message waiting in a service queue: (queue, headers, kwargs)."""
    with taken() as messages:
        return [(queue, message.headers, message.decode()[1]) for queue, message in messages]


def carried(headers: dict, kwargs: dict) -> uuid.UUID:
    """The outbox message a delivery carries: an event's id, or a task's or command's."""
    return uuid.UUID(kwargs.get("event_id") or headers["id"])


def deliveries(*messages) -> list[tuple[str, str, dict, dict]]:
    """The queued deliveries of these outbox messages: (queue, task, headers, kwargs)."""
    ids = {message.message_id for message in messages}
    return sorted(((queue, headers["task"], headers, kwargs)
                   for queue, headers, kwargs in queued()
                   if carried(headers, kwargs) in ids), key=lambda d: (d[0], d[1]))


@pytest.fixture(autouse=True)
def removed_after() -> Iterator[None]:
    """These tests' messages are never run: no worker consumes in this module, and their
    rows and deliveries are removed afterwards, so none is left for a relay or a worker."""
    with unit_of_work() as session:
        last = session.scalar(select(func.max(OutboxMessage.id))) or 0
    yield
    with unit_of_work() as session:
        ids = set(session.scalars(delete(OutboxMessage).where(
            OutboxMessage.id > last, OutboxMessage.name.in_(NAMES))
            .returning(OutboxMessage.message_id)))
    with taken() as messages:
        for _, message in messages:
            if carried(message.headers, message.decode()[1]) in ids:
                message.ack()


def rows(*messages) -> dict[uuid.UUID, OutboxMessage]:
    ids = [message.message_id for message in messages]
    with unit_of_work() as session:
        found = session.scalars(select(OutboxMessage).where(OutboxMessage.message_id.in_(ids)))
        return {row.message_id: row for row in found}


def no_such_pet() -> int:
    return random.randrange(10**12, 2 * 10**12)


def test_a_commit_publishes_its_messages_and_marks_all_but_a_command_sent():
    pet = no_such_pet()
    with unit_of_work() as session:
        task = send_task(session, "photos.create_photos", pet_id=pet, photos=[])
        heard = publish(session, PetCreated(pet_id=pet, status="available", version=1))
        unheard = publish(session, PetReserved(pet_id=pet, status="pending", version=2))
        command = send_command(session, "pets.reserve_pet", saga_id=str(uuid.uuid4()),
                               step="reserve_pet", phase="action")

    # Each reaches the queue of the service that runs it; an event, each subscriber's.
    assert [(queue, name) for queue, name, _, _ in deliveries(task, heard, unheard, command)
            ] == [("inventory", "inventory.on_pet_changed"), ("pets", "pets.reserve_pet"),
                  ("photos", "photos.create_photos")]
    [(_, _, _, event)] = deliveries(heard)
    assert event == {"event_id": str(heard.message_id), "event_type": PetCreated.type,
                     **heard.payload}
    stored = rows(task, heard, unheard, command)
    assert stored[task.message_id].sent_at is not None
    assert stored[heard.message_id].sent_at is not None
    assert stored[unheard.message_id].sent_at is not None  # stored as sent: nobody hears it
    assert stored[command.message_id].sent_at is None  # its receiver's commit will say
    assert {row.attempts for row in stored.values()} == {0}


def test_a_message_the_broker_refused_is_counted_and_sent_by_the_periodic_relay(
        monkeypatch):
    monkeypatch.setattr(relay, "broker", broker_down)
    with unit_of_work() as session:
        task = send_task(session, "photos.create_photos", pet_id=no_such_pet(), photos=[])
        command = send_command(session, "pets.reserve_pet", saga_id=str(uuid.uuid4()),
                               step="reserve_pet", phase="action")
    assert deliveries(task, command) == []
    for row in rows(task, command).values():
        assert (row.sent_at, row.attempts) == (None, 1)
        assert "refused" in row.last_error.lower()

    monkeypatch.undo()  # the broker is back, and a while has passed since the commit
    with unit_of_work() as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.message_id.in_(
            [task.message_id, command.message_id])).values(
            created_at=OutboxMessage.created_at - timedelta(seconds=30)))
    relay.relay_pending()  # as beat runs it

    assert [name for _, name, _, _ in deliveries(task, command)] == [
        "pets.reserve_pet", "photos.create_photos"]
    assert all(row.sent_at is not None for row in rows(task, command).values())


def test_the_periodic_relay_sends_a_command_again_only_when_it_must_have_been_lost():
    """As docs/sagas.md says: when publishing it failed, or nobody took it for a minute."""
    now = utcnow()

    def row(kind: str, seconds_ago: float, attempts: int = 0) -> OutboxMessage:
        name, payload = ((PetCreated.type, {"pet_id": no_such_pet(), "status": "available",
                                            "version": 1}) if kind == EVENT
                         else ("pets.reserve_pet", {"saga_id": str(uuid.uuid4())}))
        return OutboxMessage(message_id=uuid.uuid4(), kind=kind, name=name, payload=payload,
                             attempts=attempts, created_at=now - timedelta(seconds=seconds_ago))

    cases = {
        "an event left behind": (row(EVENT, 30), True),
        "a command published, waiting for its receiver": (row(COMMAND, 30), False),
        "a command whose publishing failed": (row(COMMAND, 30, attempts=1), True),
        "a command nobody took for two minutes": (row(COMMAND, 120), True),
    }
    with unit_of_work() as session:
        session.add_all(message for message, _ in cases.values())
    relay.relay_pending()  # as beat runs it

    sent = {carried(headers, kwargs) for _, _, headers, kwargs in
            deliveries(*(message for message, _ in cases.values()))}
    assert {name for name, (message, _) in cases.items() if message.message_id in sent} == {
        name for name, (_, expected) in cases.items() if expected}


def test_flower_shows_the_kwargs_celery_would_show_cut_at_celery_s_length():
    state = {"kind": "create_order", "payload": {"pet_id": 7, "note": "x" * 2000}}
    with unit_of_work() as session:
        short = send_command(session, "pets.reserve_pet", saga_id=str(uuid.uuid4()),
                             sent=state | {"payload": {"pet_id": 7, "ship_date": None}})
        long = send_command(session, "pets.reserve_pet", saga_id=str(uuid.uuid4()),
                            sent=state)
    maxsize = celery.amqp.kwargsrepr_maxsize
    [(_, _, shown_short, _)] = deliveries(short)
    [(_, _, shown_long, _)] = deliveries(long)
    assert shown_short["kwargsrepr"] == saferepr(short.payload, maxsize)
    assert shown_long["kwargsrepr"].startswith(repr(long.payload)[:100])
    assert len(shown_long["kwargsrepr"]) == maxsize
