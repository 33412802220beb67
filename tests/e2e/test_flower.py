"""Flower, as the Procfile runs it, shows a saga's step tasks when searched by its id."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models.db import unit_of_work, utcnow
from models.outbox import COMMAND, OutboxMessage
from petstore.embedded import free_port
from tests.support.waiting import eventually
from workers.celery_app import HOUSEKEEPING

STEP_TASKS = {"pets.reserve_pet", "orders.place_order", "inventory.reserve_stock"}


def get(url: str, headers: dict | None = None) -> tuple[int | None, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None, b""


class Flower:
    """`celery -A workers flower` in a subprocess, on a free port."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environ = {name: value for name, value in os.environ.items()
                   if name not in ("FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API")}
        self.env = {**environ, **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> Flower:
        command = [sys.executable, "-m", "celery", "-A", "workers", "flower",
                   "--address=127.0.0.1", f"--port={self.port}"]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"flower exited:\n{self.log_path.read_text()[-3000:]}")
            return get(f"{self.base}/healthcheck")[0] == 200

        try:
            eventually(answers, timeout=20, interval=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def tasks(self, **query: str) -> dict[str, dict]:
        status, body = get(f"{self.base}/api/tasks?{urllib.parse.urlencode(query)}")
        assert status == 200, body
        return json.loads(body)

    def workers_heard(self) -> dict[str, bool]:
        """The workers Flower knows from their events (heartbeats), alive or not."""
        status, body = get(f"{self.base}/api/workers?status=true")
        assert status == 200, body
        return json.loads(body)


@pytest.fixture(scope="module")
def flower(worker, tmp_path_factory):
    """Flower with its open API, once it receives the worker's task events."""
    process = Flower(tmp_path_factory.mktemp("flower") / "flower.log",
                     FLOWER_UNAUTHENTICATED_API="true").start()
    try:
        # Once Flower has heard the worker's heartbeat (every 2 s), its event receiver is
        # connected and sees every task event sent from now on.
        eventually(lambda: process.workers_heard().get(worker.name), timeout=20,
                   interval=0.2)
        yield process
    finally:
        process.stop()


def place_order(client, owner, customer) -> str:
    """Order a fresh pet; returns the saga's id."""
    pet = client.post("/v2/pet", json={"name": f"rex-{uuid.uuid4().hex[:8]}",
                                       "photoUrls": []}, headers=owner)
    assert pet.status_code == 200, pet.json
    response = client.post("/v2/store/order", json={"petId": pet.json["id"]},
                           headers={**customer, "Prefer": "respond-async"})
    assert response.status_code == 202, response.json
    return response.json["sagaId"]


def test_flower_finds_a_sagas_step_tasks_by_its_id(flower, worker, client, owner, customer):
    saga_id = place_order(client, owner, customer)

    def steps(search: str) -> dict[str, str]:
        found = {task["name"]: task["state"] for task in flower.tasks(search=search).values()}
        return found if found == dict.fromkeys(STEP_TASKS, "SUCCESS") else {}

    # Events reach Flower asynchronously: the steps show up, then turn SUCCESS.
    eventually(lambda: steps(saga_id), timeout=15, interval=0.2)
    assert steps(f"kwargs:saga_id={saga_id}")
    assert steps(f"{saga_id} state:SUCCESS")
    for task in flower.tasks(search=saga_id).values():
        assert f"'saga_id': '{saga_id}'" in task["kwargs"]
        assert task["worker"] == worker.name
    assert flower.tasks(search=f"kwargs:saga_id={uuid.uuid4()}") == {}


def test_flower_with_basic_auth_refuses_requests_without_credentials(tmp_path):
    flower = Flower(tmp_path / "flower.log", FLOWER_BASIC_AUTH="admin:secret").start()
    try:
        assert get(f"{flower.base}/tasks")[0] == 401
        assert get(f"{flower.base}/api/tasks")[0] == 401
        wrong = base64.b64encode(b"admin:wrong").decode()
        assert get(f"{flower.base}/api/tasks", {"Authorization": f"Basic {wrong}"})[0] == 401
        right = {"Authorization": f"Basic {base64.b64encode(b'admin:secret').decode()}"}
        assert get(f"{flower.base}/tasks", right)[0] == 200
        assert get(f"{flower.base}/api/tasks", right)[0] == 200
    finally:
        flower.stop()


def a_command_left_behind() -> uuid.UUID:
    """A command the after-commit relay never sent, as after a crash: only the periodic
    relay sends it. It is for no saga, so its receiver takes it and changes nothing."""
    message_id = uuid.uuid4()
    with unit_of_work() as session:
        session.add(OutboxMessage(
            message_id=message_id, kind=COMMAND, name="pets.reserve_pet",
            payload={"saga_id": str(uuid.uuid4()), "step": "reserve_pet", "phase": "action"},
            created_at=utcnow() - timedelta(minutes=5)))
    return message_id


def sent(message_id: uuid.UUID) -> bool:
    with unit_of_work() as session:
        return session.scalar(select(OutboxMessage.sent_at).where(
            OutboxMessage.message_id == message_id)) is not None


def test_housekeeping_fills_neither_flower_nor_the_workers_log(flower, worker):
    # Beat runs every housekeeping task every half second here; the command left behind
    # going out shows the periodic relay ran, and the step it carries ran too.
    message_id = a_command_left_behind()
    eventually(lambda: sent(message_id), timeout=15, interval=0.2)
    eventually(lambda: flower.tasks(search=str(message_id)), timeout=15, interval=0.2)
    listed = {task["name"] for task in flower.tasks().values()}
    assert "pets.reserve_pet" in listed and not listed & set(HOUSEKEEPING)
    # Its log records, not the banner that lists every task at start.
    records = [line for line in worker.log_path.read_text().splitlines()
               if line.startswith("ts=")]
    assert not [line for line in records if any(name in line for name in HOUSEKEEPING)]
