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
from pathlib import Path

import pytest

from petstore.embedded import free_port
from tests.support.waiting import eventually

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


@pytest.fixture(scope="module")
def flower(worker, tmp_path_factory):
    """Flower with its open API, once it receives the worker's task events."""
    process = Flower(tmp_path_factory.mktemp("flower") / "flower.log",
                     FLOWER_UNAUTHENTICATED_API="true").start()
    try:
        # Beat sends outbox.relay and sagas.sweep every half second: once Flower lists one,
        # its event receiver is connected and sees everything sent from now on.
        eventually(lambda: process.tasks(limit="1"), timeout=20, interval=0.2)
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
