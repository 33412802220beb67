"""`celery -A workers saga ...` against real sagas, with real workers."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select

from models.db import unit_of_work
from models.saga import Saga, SagaStep
from sagas.orders import create_order
from tests.support.system import settled
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess


def saga_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "saga", *args],
                          capture_output=True, text=True, timeout=60)


def status_of(saga_id: str) -> str:
    with unit_of_work() as session:
        return session.get(Saga, uuid.UUID(saga_id)).status


def step_of(saga_id: str) -> tuple[str, str] | None:
    """The newest attempt's step and status."""
    with unit_of_work() as session:
        steps = session.scalars(select(SagaStep).where(SagaStep.saga_id == uuid.UUID(saga_id))
                                .order_by(SagaStep.id)).all()
    return (steps[-1].step, steps[-1].status) if steps else None


@pytest.fixture
def start_worker(tmp_path):
    started: list[WorkerProcess] = []

    def start(faults: str = "", *, beat: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"w{len(started)}.log", f"cli{len(started)}",
                               beat=beat, env={"PETSTORE_FAULTS": faults, **env}).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def order_async(client, owner, customer):
    def place() -> tuple[dict, str]:
        body = {"name": f"rex-{uuid.uuid4().hex[:8]}", "photoUrls": []}
        pet = client.post("/v2/pet", json=body, headers=owner).json
        response = client.post("/v2/store/order", json={"petId": pet["id"]},
                               headers={**customer, "Prefer": "respond-async"})
        return pet, response.json["sagaId"]

    return place


def test_a_failed_saga_is_listed_shown_and_retried_to_its_end(client, start_worker,
                                                             order_async):
    faulty = start_worker("inventory.reserve_stock=fail,pets.release_pet=error")
    pet, saga_id = order_async()
    eventually(lambda: status_of(saga_id) == "failed", timeout=30)
    faulty.stop()

    listed = saga_cli("list", "--status", "failed", "--kind", "create_order")
    assert listed.returncode == 0, listed.stderr
    assert saga_id in listed.stdout
    shown = saga_cli("show", saga_id)
    assert shown.returncode == 0, shown.stderr
    assert "pets.release_pet" in shown.stdout and "failed" in shown.stdout

    start_worker()  # the fault is gone: a healthy worker
    retried = saga_cli("retry", saga_id)
    assert retried.returncode == 0, retried.stderr
    assert "retried" in retried.stdout
    eventually(lambda: status_of(saga_id) == "compensated", timeout=30)
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"

    again = saga_cli("retry", saga_id)
    assert (again.returncode, again.stderr) == (1, f"Error: saga {saga_id} is compensated: "
                                                   "retry needs a saga that is failed\n")
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga_id]))


def test_a_retry_from_the_command_line_is_published_by_the_command_itself(
        client, start_worker, order_async):
    faulty = start_worker("inventory.reserve_stock=fail,pets.release_pet=error")
    pet, saga_id = order_async()
    eventually(lambda: status_of(saga_id) == "failed", timeout=30)
    faulty.stop()
    # A worker without beat: no sweeper and no periodic relay. Only the `celery ... saga
    # retry` process, publishing its command as it commits, can move the saga.
    start_worker(beat=False)

    retried = saga_cli("retry", saga_id)
    assert retried.returncode == 0, retried.stderr
    eventually(lambda: status_of(saga_id) == "compensated", timeout=30)
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"


def test_an_operator_compensates_a_running_saga(client, start_worker, order_async):
    # The inventory step fails and its retry is days away: the operator steps in.
    start_worker("inventory.reserve_stock=error", PETSTORE_RETRY_SCALE="1000000")
    pet, saga_id = order_async()
    eventually(lambda: step_of(saga_id) == ("count_reservation", "failed"))
    compensated = saga_cli("compensate", saga_id)
    assert compensated.returncode == 0, compensated.stderr
    eventually(lambda: status_of(saga_id) == "compensated", timeout=30)
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"
    again = saga_cli("compensate", saga_id)
    assert (again.returncode, again.stderr) == (1, f"Error: saga {saga_id} is compensated: "
                                                   "compensate needs a saga that is running or "
                                                   "failed\n")
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga_id]))


def test_an_operator_aborts_a_running_saga_and_its_late_step_changes_nothing(
        client, start_worker, order_async):
    pet, saga_id = order_async()  # no worker yet: the first step waits in its queue
    aborted = saga_cli("abort", saga_id)
    assert aborted.returncode == 0, aborted.stderr
    assert status_of(saga_id) == "failed"
    twice = saga_cli("abort", saga_id)
    assert (twice.returncode, twice.stderr) == (1, f"Error: saga {saga_id} is failed: abort "
                                                   "needs a saga that is running or "
                                                   "compensating\n")
    worker = start_worker()
    eventually(worker.idle)
    assert client.get(f"/v2/pet/{pet['id']}").json["status"] == "available"
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga_id]))


MISSING = str(uuid.uuid4())


@pytest.mark.parametrize(("args", "error"), [
    (("show", "nope"), "'nope' is not a saga id"),
    (("retry", MISSING), f"no saga {MISSING}"),
    (("abort", "x"), "'x' is not a saga id"),
])
def test_a_wrong_id_is_a_clear_error(args, error):
    result = saga_cli(*args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Error: {error}\n")


def on_version(saga_id: str, version: str) -> None:
    with unit_of_work() as session:
        session.get(Saga, uuid.UUID(saga_id)).definition_version = version


def test_versions_lists_each_kinds_definitions_with_their_sagas(order_async):
    _, saga_id = order_async()  # no worker runs here: the saga waits at its first step
    with unit_of_work() as session:
        assert session.get(Saga, uuid.UUID(saga_id)).definition_version == create_order.version
    on_version(saga_id, "0ld0ld0ld0ld")  # as if a deploy had changed create_order since
    try:
        result = saga_cli("versions")
    finally:
        on_version(saga_id, create_order.version)
    assert result.returncode == 0, result.stderr
    rows = [line.split(None, 3) for line in result.stdout.splitlines()[1:]]
    assert ["create_order", create_order.version, "current"] in [row[:3] for row in rows]
    [older] = [line for line in result.stdout.splitlines() if "0ld0ld0ld0ld" in line]
    assert older.split()[0] == "create_order"
    assert "running 1" in older and "current" not in older


def test_check_fails_while_sagas_in_flight_run_on_a_version_this_code_lacks(order_async):
    passed = saga_cli("check")
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("every saga can finish")
    _, saga_id = order_async()
    on_version(saga_id, "0ld0ld0ld0ld")
    try:
        failed = saga_cli("check")
    finally:
        on_version(saga_id, create_order.version)
    assert failed.returncode == 1
    assert "1 create_order sagas in flight run on 0ld0ld0ld0ld" in failed.stderr
    assert "this deploy would strand sagas" in failed.stderr
