"""The create-order saga under injected faults: each test runs its own real worker whose
PETSTORE_FAULTS break one step, and checks what the saga undid, in which order."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from common.settings import get_settings
from models.db import unit_of_work
from models.order import get_order
from models.outbox import COMMAND, OutboxMessage
from models.saga import Saga
from tests.support.broker import broker_down
from tests.support.system import settled
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess
from workers import relay
from workers.celery_app import is_rabbitmq

pytestmark = [pytest.mark.slow, pytest.mark.broker]  # workers killed, faults waited out

ACTIONS = [("reserve_pet", "action"), ("place_order", "action"),
           ("count_reservation", "action")]
STEP_OF = {"pets.reserve_pet": "reserve_pet", "orders.place_order": "place_order",
           "inventory.reserve_stock": "count_reservation"}


@pytest.fixture
def faulty_worker(tmp_path):
    """Start a worker (with beat) whose PETSTORE_FAULTS are these."""
    started: list[WorkerProcess] = []

    def start(faults: str, *, beat: bool = True) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"worker{len(started)}.log", f"faulty{len(started)}",
                               beat=beat, env={"PETSTORE_FAULTS": faults}).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def add_pet(client, owner) -> dict:
    body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": []}
    return client.post("/v2/pet", json=body, headers=owner).json


def order(client, customer, pet, **headers):
    return client.post("/v2/store/order", json={"petId": pet["id"]},
                       headers={**customer, **headers})


def saga_log(saga_id: str) -> tuple[Saga, list[tuple[str, str, str]]]:
    with unit_of_work() as session:
        saga = session.scalar(select(Saga).where(Saga.id == uuid.UUID(saga_id))
                              .options(selectinload(Saga.steps)))
    return saga, [(s.step, s.phase, s.status) for s in saga.steps]


def step_holds_its_transaction_open(table: str) -> bool:
    """A step has written to `table` and not committed yet (it is mid-step)."""
    with unit_of_work() as session:
        return bool(session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
            "AND query LIKE :table"), {"table": f"%{table}%"}))


def commands(saga_id: str) -> list[OutboxMessage]:
    """This saga's commands in the outbox, first first."""
    with unit_of_work() as session:
        return list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload["saga_id"].astext == saga_id,
            OutboxMessage.kind == COMMAND).order_by(OutboxMessage.id)))


def settled_saga(saga_id: str) -> Saga:
    # A deadline, not a figure: a step that kills its worker five times waits each time for
    # the pool to replace the child it lost, which takes seconds on a loaded machine.
    return eventually(lambda: (saga := saga_log(saga_id)[0]).status in (
        "completed", "compensated", "refused", "failed") and saga, timeout=90)


def order_status(order_id: int) -> str | None:
    with unit_of_work() as session:
        try:
            return get_order(session, order_id).status
        except LookupError:
            return None


@pytest.mark.parametrize(("fault", "undone", "ended"), [
    ("pets.reserve_pet", [], "refused"),  # before any step did work
    ("orders.place_order", [("reserve_pet", "compensation", "succeeded")], "compensated"),
    ("inventory.reserve_stock", [("place_order", "compensation", "succeeded"),
                                 ("reserve_pet", "compensation", "succeeded")], "compensated"),
])
def test_a_business_failure_compensates_the_steps_before_it_in_reverse(
        client, owner, customer, faulty_worker, fault, undone, ended):
    worker = faulty_worker(f"{fault}=fail")
    pet = add_pet(client, owner)
    response = order(client, customer, pet)
    assert response.status_code == 503, response.json
    assert response.json["sagaStatus"] == ended
    saga, log = saga_log(response.json["sagaId"])
    failed_at = [task for task, _ in ACTIONS].index(STEP_OF[fault])
    assert log == [(step, phase, "succeeded") for step, phase in ACTIONS[:failed_at]] + [
        (*ACTIONS[failed_at], "refused")] + undone
    assert saga.error_code == "InjectedFailure"
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"
    assert order_status(saga.payload["order_id"]) in (None, "cancelled")
    assert ("orderId" in response.json) == (order_status(saga.payload["order_id"]) is not None)
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga.id]))
    # The refusal is an answer, not a fault: one INFO line in the worker's log, no traceback
    # (a task that raised unexpectedly is logged at ERROR with one).
    lines = [line for line in worker.log_path.read_text().splitlines() if f"saga={saga.id}" in line]
    [refused] = [line for line in lines if "StepRefused" in line]
    assert f"raised expected: StepRefused('{STEP_OF[fault]} refused: " in refused
    assert "level=INFO" in refused and not [line for line in lines if "level=ERROR" in line]


@pytest.mark.parametrize(("fault", "attempts"), [
    ("pets.reserve_pet", 3), ("orders.place_order", 3), ("inventory.reserve_stock", 5)])
def test_a_step_failing_transiently_is_retried_then_compensated(
        client, owner, customer, faulty_worker, fault, attempts):
    faulty_worker(f"{fault}=error")
    pet = add_pet(client, owner)
    response = order(client, customer, pet, Prefer="respond-async")
    saga = settled_saga(response.json["sagaId"])
    _, log = saga_log(response.json["sagaId"])
    failing = [entry for entry in log if entry[2] == "failed"]
    assert len(failing) == attempts
    assert len({(step, phase) for step, phase, _ in failing}) == 1
    assert "injected transient error" in saga.error
    assert saga.status == "compensated"
    assert all(status == "succeeded" for _, phase, status in log if phase == "compensation")
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga.id]))


def test_a_compensation_that_keeps_failing_ends_the_saga_failed(
        client, owner, customer, faulty_worker):
    faulty_worker("inventory.reserve_stock=fail,pets.release_pet=error")
    pet = add_pet(client, owner)
    response = order(client, customer, pet, Prefer="respond-async")
    saga = settled_saga(response.json["sagaId"])
    _, log = saga_log(response.json["sagaId"])
    assert saga.status == "failed"
    assert "release" in saga.error or "reserve_pet compensation" in saga.error
    assert log[-10:] == [("reserve_pet", "compensation", "failed")] * 10
    assert ("place_order", "compensation", "succeeded") in log
    # Visible and left for an operator: the pet stays reserved, the order cancelled,
    # and the inventory counts the pet as it is, pending.
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "pending"
    assert order_status(saga.payload["order_id"]) == "cancelled"
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga.id]))


def test_a_step_that_crashes_its_worker_every_time_is_given_up_and_compensated(
        client, owner, customer, faulty_worker):
    faulty_worker("inventory.reserve_stock=crash")
    pet = add_pet(client, owner)
    response = order(client, customer, pet, Prefer="respond-async")
    saga = settled_saga(response.json["sagaId"])
    _, log = saga_log(response.json["sagaId"])
    assert saga.status == "compensated"
    assert log.count(("count_reservation", "action", "lost")) >= 4
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga.id]))


def test_a_worker_killed_mid_step_is_recovered(client, owner, customer, faulty_worker):
    doomed = faulty_worker("inventory.reserve_stock=delay:60", beat=False)
    pet = add_pet(client, owner)
    response = order(client, customer, pet, Prefer="respond-async")
    saga_id = response.json["sagaId"]
    # Mid-step. The relay does not send the step's command again (it was published, and
    # only its receiver's commit would confirm it). RabbitMQ gives the unacknowledged
    # message back as the worker's connection drops; Redis only after its visibility
    # timeout, so there only the sweeper brings it back.
    eventually(lambda: step_holds_its_transaction_open("inventory_pets"))
    doomed.kill()  # a real SIGKILL to the worker and its children, mid-step

    faulty_worker("")  # a healthy worker, whose beat runs the sweeper
    saga = settled_saga(saga_id)
    _, log = saga_log(saga_id)
    assert saga.status == "completed"
    if not is_rabbitmq(get_settings().broker_url):
        assert saga.sweeps >= 1  # dispatched again once it was overdue
    # The killed first delivery's count rolled back with its work; the next one is attempt 1.
    assert log[-1] == ("count_reservation", "action", "succeeded")
    assert ("count_reservation", "action", "running") not in log
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "pending"
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga.id]))


def test_a_broker_outage_as_a_saga_starts_delays_it_and_loses_nothing(
        client, owner, customer, faulty_worker, monkeypatch):
    faulty_worker("")  # a healthy worker, whose beat runs the periodic relay
    pet = add_pet(client, owner)
    monkeypatch.setattr(relay, "broker", broker_down)
    response = order(client, customer, pet, Prefer="respond-async")
    assert response.status_code == 202  # accepted: the saga and its first command are stored
    saga_id = response.json["sagaId"]
    # Publishing the first command after the commit failed, and the command says so. (The
    # worker's relay reaches the broker and may send it at any moment: what it records stays.)
    first = commands(saga_id)[0]
    assert (first.name, first.attempts) == ("pets.reserve_pet", 1)
    assert "refused" in first.last_error.lower()

    monkeypatch.undo()  # the broker is back: the periodic relay sends the command
    saga = settled_saga(saga_id)
    assert saga.status == "completed"
    assert all(command.sent_at is not None for command in commands(saga_id))
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga_id]))
