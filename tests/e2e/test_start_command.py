"""The start command brings the whole system up over HTTP, and SIGTERM brings it down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import psutil
import pytest

from petstore.embedded import free_port
from tests.support.waiting import eventually


def call(url: str, data: dict | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, headers={"Content-Type": "application/json",
                                                   **(headers or {})},
                                     data=json.dumps(data).encode() if data else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or "null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or "null")
    except OSError:
        return None, None


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    port, flower_port = free_port(), free_port()
    log = (tmp_path_factory.mktemp("system") / "system.log").open("wb")
    env = {**os.environ, "PORT": str(port), "FLOWER_PORT": str(flower_port)}
    process = subprocess.Popen([sys.executable, "-m", "petstore", "dev"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v2"
    eventually(lambda: call(f"{base}/store/inventory")[0] == 200, timeout=60, interval=0.5)
    yield base, flower_port, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    log.close()


def test_the_started_system_serves_the_api_and_flower(system):
    base, flower_port, _ = system
    status, pets = call(f"{base}/pet/findByStatus?status=available")
    assert status == 200
    assert isinstance(pets, list)
    flower = urllib.request.urlopen(f"http://127.0.0.1:{flower_port}/", timeout=5)
    assert flower.status == 200


def test_a_pet_added_over_http_reaches_the_inventory_through_the_workers(system):
    base, _, _ = system
    username, password = os.environ["PETSTORE_OWNER"].split(":")
    status, token = call(f"{base}/user/login?username={username}&password={password}")
    assert status == 200
    pet = {"name": f"e2e-{uuid.uuid4().hex[:6]}", "photoUrls": [], "status": "sold"}
    before = call(f"{base}/store/inventory")[1]["sold"]
    status, created = call(f"{base}/pet", pet, headers={"api_key": token})
    assert status == 200, created
    eventually(lambda: call(f"{base}/store/inventory")[1]["sold"] > before, timeout=20)


def test_sigterm_stops_every_process(system):
    _, _, process = system
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 8
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
