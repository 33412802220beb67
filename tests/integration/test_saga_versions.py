"""A deploy that changes a saga's steps, with sagas in flight on the old ones: each saga
finishes on the definition it started with, run by real workers of the deployed code
(tests/support/deployed.py)."""

from __future__ import annotations

import importlib
import re
import uuid
from datetime import timedelta
from types import ModuleType

import pytest
from sqlalchemy import select, update

from models.db import unit_of_work, utcnow
from models.saga import COMPLETED, RUNNING, Saga, SagaStep
from sagas import registry
from sagas.orders import create_order
from tests.support.system import settled
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess
from web.store import views
from workers.celery_app import app

DEPLOYED = "tests.support.deployed"
OLD_STEPS = ["reserve_pet", "place_order", "count_reservation"]
NEW_STEPS = ["reserve_pet", "place_order", "note_order", "count_reservation"]


@pytest.fixture(scope="module")
def deployed() -> ModuleType:
    """The deploy's module, for its definitions: imported with the registry it changes
    put back afterwards, so that this process runs the deploy only where a test says."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "DEFINITIONS", dict(registry.DEFINITIONS))
        patch.setattr(registry, "RETIRED", registry.RETIRED)
        return importlib.import_module(DEPLOYED)


@pytest.fixture
def deploy(monkeypatch, deployed):
    """Deploy the new create_order in this process, where the API starts sagas; the old
    one stays registered, as sagas/retired.py would keep it."""

    def run() -> None:
        monkeypatch.setitem(registry.DEFINITIONS, "create_order", deployed.create_order)
        monkeypatch.setattr(registry, "RETIRED", (*registry.RETIRED, create_order))
        # The API starts create_order from the definition its view imported.
        monkeypatch.setattr(views, "create_order", deployed.create_order)

    return run


@pytest.fixture
def start_worker(tmp_path):
    """Start workers of the deployed code; every one is stopped when the test ends."""
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"w{len(started)}.log", f"deployed{len(started)}",
                               env={"PETSTORE_FAULTS": "", **env}, app_module=DEPLOYED)
        started.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
def place_orders(client, owner):
    """Place `count` orders for new pets, asynchronously; their pets' ids and sagas'."""

    def place(count: int, customer: dict[str, str]) -> tuple[list[int], list[str]]:
        pets, sagas = [], []
        for _ in range(count):
            body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": []}
            pet = client.post("/v2/pet", json=body, headers=owner).json
            response = client.post("/v2/store/order", json={"petId": pet["id"]},
                                   headers={**customer, "Prefer": "respond-async"})
            assert response.status_code == 202, response.json
            pets.append(pet["id"])
            sagas.append(response.json["sagaId"])
        return pets, sagas

    return place


def sagas_of(saga_ids: list[str]) -> list[Saga]:
    with unit_of_work() as session:
        return [session.get(Saga, uuid.UUID(saga_id)) for saga_id in saga_ids]


def log_of(saga_id: str) -> list[tuple[str, str, str]]:
    """The saga's step log: (step, phase, status) of each attempt, in order."""
    with unit_of_work() as session:
        steps = session.scalars(select(SagaStep).where(SagaStep.saga_id == uuid.UUID(saga_id))
                                .order_by(SagaStep.id)).all()
    return [(step.step, step.phase, step.status) for step in steps]


def ran_on(saga_id: str, steps: list[str]) -> bool:
    """The saga's log holds these steps' actions only, each succeeded once, in order."""
    log = log_of(saga_id)
    return ({phase for _, phase, _ in log} == {"action"}
            and {step for step, _, _ in log} == set(steps)
            and [step for step, _, status in log if status == "succeeded"] == steps)


def waiting_at_first_step(saga: Saga) -> bool:
    return (saga.status, saga.current_step, saga.attempt, saga.sweeps) == (RUNNING, 0, 0, 0)


def test_sagas_in_flight_finish_on_their_old_steps_after_a_deploy_inserts_a_step(
        deployed, deploy, start_worker, place_orders, customer, sign_up):
    # No worker runs: the old sagas wait at their first step, on today's create_order.
    old_pets, old_sagas = place_orders(3, customer)
    assert all(waiting_at_first_step(saga) for saga in sagas_of(old_sagas))
    assert {saga.definition_version for saga in sagas_of(old_sagas)} == {create_order.version}
    assert deployed.create_order.version != create_order.version
    # The new step's task goes to the order service's queue by its name alone.
    assert app.amqp.router.route({}, deployed.NOTE_ORDER.action)["queue"].name == "orders"

    deploy()
    start_worker()
    new_pets, new_sagas = place_orders(3, sign_up()[2])
    eventually(lambda: settled(pets=old_pets + new_pets, sagas=old_sagas + new_sagas),
               timeout=60)

    for saga in sagas_of(old_sagas):
        assert (saga.status, saga.definition_version) == (COMPLETED, create_order.version)
        assert "noted" not in saga.payload
        assert ran_on(str(saga.id), OLD_STEPS), log_of(str(saga.id))
    for saga in sagas_of(new_sagas):
        assert (saga.status, saga.definition_version) == (COMPLETED,
                                                         deployed.create_order.version)
        assert saga.payload["noted"] is True
        assert ran_on(str(saga.id), NEW_STEPS), log_of(str(saga.id))


def stranded_warnings(worker: WorkerProcess, since: int) -> list[str]:
    """The sweeper's warnings, after `since` (an offset in the worker's log), that overdue
    sagas wait on a definition the worker lacks."""
    return re.findall(r"(\d+) create_order sagas are overdue on definition (\w+), which this "
                      r"deployment does not have",
                      worker.log_path.read_text(errors="replace")[since:])


def lacked_definition(worker: WorkerProcess, saga_id: str) -> bool:
    """The worker's log shows a delivery of the saga's first step failing because the
    worker has no definition of the saga's version."""
    return re.search(rf"saga={saga_id} step=reserve_pet .*raised unexpected: UnknownDefinition"
                     rf"\('no create_order saga definition of version {create_order.version} ",
                     worker.log_path.read_text(errors="replace")) is not None


def test_a_worker_without_the_old_definition_leaves_the_old_sagas_alone(
        deployed, deploy, start_worker, place_orders, customer):
    old_pets, old_sagas = place_orders(2, customer)
    deploy()
    # A deploy that dropped the old create_order: its worker runs no saga started on it.
    dropped = start_worker(DEPLOYED_WITHOUT_RETIRED="1", PETSTORE_SWEEP_INTERVAL="0.5")

    # Each old saga's first command reaches the worker, which finds no definition for it;
    # a new saga runs to its end.
    eventually(lambda: all(lacked_definition(dropped, saga) for saga in old_sagas),
               timeout=30)
    new_pets, new_sagas = place_orders(1, customer)
    eventually(lambda: settled(pets=new_pets, sagas=new_sagas), timeout=30)
    [new] = sagas_of(new_sagas)
    assert (new.status, new.definition_version) == (COMPLETED, deployed.create_order.version)
    # Overdue, yet the sweeper passes them by: it warns that they wait for a deployment that
    # has their definition, and touches none.
    with unit_of_work() as session:
        session.execute(update(Saga).where(Saga.id.in_([uuid.UUID(s) for s in old_sagas]))
                        .values(deadline_at=utcnow() - timedelta(seconds=1)))
    since = len(dropped.log_path.read_text(errors="replace"))
    warned = eventually(lambda: stranded_warnings(dropped, since), timeout=30)
    assert set(warned) == {("2", create_order.version)}, warned
    assert "sagas.sweep" not in dropped.log_path.read_text()[since:]  # it never failed
    eventually(dropped.idle)
    assert all(waiting_at_first_step(saga) for saga in sagas_of(old_sagas))
    assert all(log_of(saga) == [] for saga in old_sagas)
    dropped.stop()

    # The right deploy's worker, the old definition kept, sweeps them on to their end.
    start_worker()
    eventually(lambda: settled(pets=old_pets, sagas=old_sagas), timeout=60)
    for saga in sagas_of(old_sagas):
        assert (saga.status, saga.definition_version) == (COMPLETED, create_order.version)
        assert ran_on(str(saga.id), OLD_STEPS), log_of(str(saga.id))
