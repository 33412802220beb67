"""The outbox relay: what it marks sent once it has published, and what it leaves to others
(a saga's command to its receiver, a message it failed to send to the periodic relay)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.utils.saferepr import saferepr
from sqlalchemy import delete, func, select

from models.db import unit_of_work, utcnow
from models.events import PetCreated, PetReserved
from models.outbox import (
    COMMAND,
    EVENT,
    TASK,
    Message,
    OutboxMessage,
    publish,
    send_command,
    send_task,
)
from workers import relay

NAMES = ("photos.create_photos", "pets.reserve_pet", PetCreated.type, PetReserved.type)


@pytest.fixture(autouse=True)
def removed_after() -> Iterator[None]:
    """These tests' messages are never really sent: none is left for a relay or a worker."""
    with unit_of_work() as session:
        last = session.scalar(select(func.max(OutboxMessage.id))) or 0
    yield
    with unit_of_work() as session:
        session.execute(delete(OutboxMessage).where(OutboxMessage.id > last,
                                                    OutboxMessage.name.in_(NAMES)))


def rows(*messages) -> dict[uuid.UUID, OutboxMessage]:
    ids = [message.message_id for message in messages]
    with unit_of_work() as session:
        found = session.scalars(select(OutboxMessage).where(OutboxMessage.message_id.in_(ids)))
        return {row.message_id: row for row in found}


def test_the_relay_marks_what_it_published_and_leaves_a_command_for_its_receiver(monkeypatch):
    published = []
    monkeypatch.setattr(relay, "_publish", lambda messages: (
        published.extend(messages) or [m.message_id for m in messages], None))
    pet = random.randrange(10**9, 2 * 10**9)  # no such pet: nobody runs these messages
    with unit_of_work() as session:
        task = send_task(session, "photos.create_photos", pet_id=pet, photos=[])
        heard = publish(session, PetCreated(pet_id=pet, status="available", version=1))
        unheard = publish(session, PetReserved(pet_id=pet, status="pending", version=2))
        command = send_command(session, "pets.reserve_pet", saga_id=str(uuid.uuid4()),
                               step="reserve_pet", phase="action")
    assert published == [task, heard, unheard, command]
    stored = rows(task, heard, unheard, command)
    assert stored[task.message_id].sent_at is not None
    assert stored[heard.message_id].sent_at is not None
    assert stored[unheard.message_id].sent_at is not None  # written as sent: nobody hears it
    assert stored[command.message_id].sent_at is None  # its receiver's commit will say
    assert {row.attempts for row in stored.values()} == {0}


def test_a_failed_publish_counts_against_every_message_it_left_unsent(monkeypatch):
    monkeypatch.setattr(relay, "_publish", lambda messages: (
        [messages[0].message_id], "ConnectionError: the broker went away"))
    with unit_of_work() as session:
        first = send_task(session, "photos.create_photos", pet_id=-1, photos=[])
        command = send_command(session, "pets.reserve_pet", saga_id=str(uuid.uuid4()),
                               step="reserve_pet", phase="action")
        last = send_task(session, "photos.create_photos", pet_id=-2, photos=[])
    stored = rows(first, command, last)
    assert (stored[first.message_id].sent_at is not None, stored[first.message_id].attempts) \
        == (True, 0)
    for message in (command, last):
        assert stored[message.message_id].sent_at is None
        assert stored[message.message_id].attempts == 1
        assert "went away" in stored[message.message_id].last_error


def test_flower_shows_the_kwargs_celery_would_show_cut_at_celery_s_length(monkeypatch):
    published = []
    monkeypatch.setattr(relay.app, "send_task", lambda name, **options: published.append(
        options["kwargsrepr"]))
    state = {"kind": "create_order", "payload": {"pet_id": 7, "note": "x" * 2000}}
    short = Message(COMMAND, "pets.reserve_pet", {"saga_id": "s", "sent": state | {
        "payload": {"pet_id": 7, "ship_date": None}}})
    long = Message(COMMAND, "pets.reserve_pet", {"saga_id": "s", "sent": state})
    assert relay._publish([short, long]) == ([short.message_id, long.message_id], None)
    assert published[0] == saferepr(short.payload, relay.app.amqp.kwargsrepr_maxsize)
    assert published[1].startswith(repr(long.payload)[:100])
    assert len(published[1]) == relay.app.amqp.kwargsrepr_maxsize


def test_the_periodic_relay_takes_over_a_command_only_when_it_must_have_been_lost():
    now = utcnow()

    def row(kind: str, age: float, attempts: int = 0) -> OutboxMessage:
        return OutboxMessage(kind=kind, name="pets.reserve_pet", payload={}, attempts=attempts,
                             created_at=now - timedelta(seconds=age))

    cases = {
        "an event left a moment ago": (row(EVENT, relay.LEFT_BEHIND + 1), True),
        "a task just committed": (row(TASK, 0), False),
        "a command published, waiting for its receiver": (row(COMMAND, relay.LEFT_BEHIND + 1),
                                                           False),
        "a command whose publishing failed": (row(COMMAND, relay.LEFT_BEHIND + 1, 1), True),
        "a command never taken for long": (row(COMMAND, relay.UNCONFIRMED + 1), True),
    }
    with unit_of_work() as session:
        session.add_all(message for message, _ in cases.values())
        session.flush()
        ids = {message.id: name for name, (message, _) in cases.items()}
        taken = session.scalars(relay.left_behind(now).where(OutboxMessage.id.in_(ids))).all()
        session.rollback()  # nothing of this stays for the real relay
    assert {ids[message.id] for message in taken} == {
        name for name, (_, expected) in cases.items() if expected}
