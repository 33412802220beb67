"""`celery -A workers saga ...` against real sagas, with real workers."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime

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
    # Each attempt names the worker that ran it and how long it took.
    release = [line for line in shown.stdout.splitlines()
               if line.startswith("reserve_pet ") and "pets.release_pet" in line]
    assert release and all(faulty.name in line and " ms" in line for line in release)

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
    # The inventory step fails and its retry is days away (on Redis its message is held
    # unacknowledged that long, which the guardrails allow only a visibility timeout to
    # match): the operator steps in.
    start_worker("inventory.reserve_stock=error", PETSTORE_RETRY_SCALE="1000000",
                 PETSTORE_VISIBILITY_TIMEOUT=str(10**9))
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


def statuses_of(saga_ids: list[str]) -> set[str]:
    with unit_of_work() as session:
        return set(session.scalars(select(Saga.status).where(
            Saga.id.in_([uuid.UUID(saga_id) for saga_id in saga_ids]))))


def test_two_hundred_failed_sagas_are_repaired_by_one_command_after_a_dry_run(
        client, start_worker, order_async):
    # An incident: orders refused and, for a while, the pet service cannot release a pet,
    # so every saga's compensation runs out of attempts: 200 sagas fail.
    since = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    faulty = start_worker("orders.place_order=fail,pets.release_pet=error",
                          PETSTORE_RETRY_SCALE="0.001")
    placed = [order_async() for _ in range(200)]
    ids = [saga_id for _, saga_id in placed]
    eventually(lambda: statuses_of(ids) == {"failed"}, timeout=240, interval=1)
    faulty.stop()
    start_worker()  # the incident is over
    selection = ("--kind", "create_order", "--step", "reserve_pet", "--error", "release_pet",
                 "--since", since.isoformat())

    dry = saga_cli("retry", *selection, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[-1] == "200 sagas; nothing changed (dry run)"
    assert {line.split()[1] for line in lines[:-1]} == set(ids)
    assert all(line.endswith(": would run pets.release_pet (reserve_pet compensation); "
                             "ends compensated") for line in lines[:-1]), lines[0]
    assert statuses_of(ids) == {"failed"}

    asked = saga_cli("retry", *selection)  # more than a handful, and no one to say yes
    assert asked.returncode == 1 and "Aborted" in asked.stderr
    assert statuses_of(ids) == {"failed"}

    repaired = saga_cli("retry", *selection, "--yes")
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.splitlines()[-1] == "retried 200, skipped 0, errors 0"
    eventually(lambda: statuses_of(ids) == {"compensated"}, timeout=120, interval=1)
    eventually(lambda: settled(pets=[pet["id"] for pet, _ in placed], sagas=ids), timeout=60)

    # Idempotent: nothing left to select, and sagas named that moved on are skipped.
    assert saga_cli("retry", *selection, "--yes").stdout.splitlines()[-1] == (
        "retried 0, skipped 0, errors 0")
    twice = saga_cli("retry", *ids[:2])
    assert (twice.returncode, twice.stdout.splitlines()[-1]) == (
        0, "retried 0, skipped 2, errors 0")


@pytest.mark.broker  # the queue's count, as the broker tells it
def test_explain_says_what_a_saga_waits_for_behind_a_stopped_worker(
        client, owner, start_worker, order_async):
    start_worker(beat=False).stop()  # the pets service's worker went away
    _, saga_id = order_async()
    explained = saga_cli("explain", saga_id)
    assert explained.returncode == 0, explained.stderr
    waits, queue, attempt, deadline = explained.stdout.splitlines()
    assert waits == (f"saga {saga_id} (create_order) is running: it waits for reserve_pet "
                     "(action), the task pets.reserve_pet")
    queued = re.fullmatch(r"queue pets: (\d+) message\(s\) waiting to be taken", queue)
    assert queued and int(queued[1]) >= 1, queue
    assert attempt == "attempt 0 of 3, dispatched again 0 time(s); no worker has taken it yet"
    assert re.fullmatch(r"deadline \S+ \S+ UTC \(in \d+ s\); then the sweeper runs "
                        r"pets\.reserve_pet \(reserve_pet action\)", deadline), deadline

    answer = client.get(f"/v2/sagas/{saga_id}", headers=owner).json
    assert answer["waitingFor"] | {"queued": None, "deadline": None} == {
        "step": "reserve_pet", "phase": "action", "task": "pets.reserve_pet", "queue": "pets",
        "queued": None, "attempt": 0, "attempts": 3, "sweeps": 0, "deadline": None,
        "lastWorker": None, "lastAttempt": None,
        "atDeadline": "would run pets.reserve_pet (reserve_pet action)"}

    worker = start_worker()  # back: the saga goes on and waits for nothing
    eventually(lambda: status_of(saga_id) == "completed", timeout=30)
    assert saga_cli("explain", saga_id).stdout == (
        f"saga {saga_id} (create_order) is completed: it waits for nothing\n")
    assert client.get(f"/v2/sagas/{saga_id}", headers=owner).json["waitingFor"] is None
    eventually(worker.idle)
