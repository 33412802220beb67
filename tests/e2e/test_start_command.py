"""The start command brings the whole system up over HTTP, and SIGTERM brings it down.

Here it runs on the test session's servers, given through DATABASE_URL and REDIS_URL, with a
data folder that does not exist yet: a fresh checkout pointed at external servers.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest

from petstore.embedded import free_port
from tests.support.processes import stop_group
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # starts the whole system


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
def data_dir(tmp_path_factory) -> Path:
    """The system's data folder: not there yet, as in a fresh checkout."""
    return tmp_path_factory.mktemp("checkout") / ".data"


@pytest.fixture(scope="module")
def system(tmp_path_factory, data_dir):
    port, flower_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("system") / "system.log"
    log = log_path.open("wb")
    env = {**os.environ, "PORT": str(port), "FLOWER_PORT": str(flower_port),
           "PETSTORE_DATA_DIR": str(data_dir)}
    process = subprocess.Popen([sys.executable, "-m", "petstore", "dev"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/v2"
        eventually(lambda: call(f"{base}/store/inventory")[0] == 200, timeout=90, interval=0.5)
        yield base, flower_port, process, log_path
    finally:
        stop_group(process, grace=60)
        log.close()


def flower_status(url: str, credentials: str | None = None, data: bytes | None = None,
                  headers: dict | None = None) -> int | None:
    headers = dict(headers or {})
    if credentials:
        headers["Authorization"] = f"Basic {base64.b64encode(credentials.encode()).decode()}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers),
                                    timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_the_started_system_serves_the_api_and_flower_to_its_credentials(system, data_dir):
    base, flower_port, _, _ = system
    status, pets = call(f"{base}/pet/findByStatus?status=available")
    assert status == 200
    assert isinstance(pets, list)
    flower = f"http://127.0.0.1:{flower_port}"
    credentials = (data_dir / "flower-credentials").read_text().strip()
    assert (data_dir / "flower-credentials").stat().st_mode & 0o777 == 0o600
    eventually(lambda: flower_status(f"{flower}/", credentials) == 200, timeout=60)
    assert flower_status(f"{flower}/api/tasks", credentials) == 200
    # A stranger, or a page of another site posting to Flower's API, is refused.
    assert flower_status(f"{flower}/") == 401
    assert flower_status(f"{flower}/api/tasks") == 401
    attack = flower_status(f"{flower}/api/task/async-apply/photos.on_pet_deleted",
                           data=b'{"kwargs": {}}',
                           headers={"Content-Type": "text/plain", "Origin": "http://evil"})
    assert attack in (401, 403)  # no credentials, and no XSRF token either


def test_a_pet_added_over_http_reaches_the_inventory_through_the_workers(system):
    base, _, _, _ = system
    username, password = os.environ["PETSTORE_OWNER"].split(":")
    status, token = call(f"{base}/user/login?username={username}&password={password}")
    assert status == 200
    pet = {"name": f"e2e-{uuid.uuid4().hex[:6]}", "photoUrls": [], "status": "sold"}
    before = call(f"{base}/store/inventory")[1]["sold"]
    status, created = call(f"{base}/pet", pet, headers={"api_key": token})
    assert status == 200, created
    eventually(lambda: call(f"{base}/store/inventory")[1]["sold"] > before, timeout=20)


def test_beat_keeps_its_schedule_in_the_data_folder_made_for_it(system, data_dir):
    _, _, process, _ = system
    eventually(lambda: list(data_dir.glob("celerybeat-schedule*")), timeout=30)
    beat = [child for child in psutil.Process(process.pid).children(recursive=True)
            if "beat" in child.cmdline()]
    assert beat and all(child.is_running() for child in beat)


def test_the_run_file_names_the_system_but_not_servers_from_the_environment(system, data_dir):
    base, flower_port, process, _ = system
    run_file = data_dir / "run.json"
    assert stat.S_IMODE(run_file.stat().st_mode) == 0o600
    assert json.loads(run_file.read_text()) == {
        "pid": process.pid, "api_url": base, "flower_url": f"http://127.0.0.1:{flower_port}",
        "database_url": None, "redis_url": None}


def test_a_command_without_the_servers_urls_is_told_the_run_has_them(system, data_dir):
    _, _, process, _ = system
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "saga", "list"],
                            env={**env, "PETSTORE_DATA_DIR": str(data_dir)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"the `make run` running here (PID {process.pid})" in result.stderr
    assert "set DATABASE_URL and REDIS_URL as it has them" in result.stderr


def test_flower_refuses_a_cross_origin_write_even_with_its_credentials(system, data_dir):
    _, flower_port, _, _ = system
    credentials = (data_dir / "flower-credentials").read_text().strip()
    task = f"http://127.0.0.1:{flower_port}/api/task/async-apply/photos.on_pet_deleted"
    # A browser holding Flower's login sends it along with another site's form post.
    for sent_by_another_site in ({"Origin": "http://evil.example"},
                                 {"Sec-Fetch-Site": "cross-site"}):
        status = flower_status(task, credentials, data=b'{"kwargs": {}}',
                               headers={"Content-Type": "text/plain", **sent_by_another_site})
        assert status == 403


def test_metrics_are_closed_but_to_the_token_made_at_start(system, data_dir):
    base, _, _, _ = system
    metrics = base.removesuffix("/v2") + "/metrics"
    token_file = data_dir / "metrics-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert call_text(metrics)[0] in (401, 403)
    assert call_text(metrics, {"Authorization": "Bearer wrong"})[0] == 401
    status, body = call_text(metrics, {"Authorization": f"Bearer {token_file.read_text()}"})
    assert status == 200
    assert "petstore_sagas" in body


def test_no_password_or_token_reaches_the_log(system):
    base, _, _, log_path = system
    username, password = os.environ["PETSTORE_OWNER"].split(":")
    wrong = f"wrong-{uuid.uuid4().hex}"
    status, token = call(f"{base}/user/login?username={username}&password={password}")
    assert status == 200
    assert call(f"{base}/user/login?username={username}&password={wrong}")[0] == 401
    assert call(f"{base}/user/{username}", headers={"api_key": token})[0] == 200
    # The access log writes each request line as it ends.
    eventually(lambda: f"/v2/user/{username} " in log_path.read_text(errors="replace"),
               timeout=20)
    logged = log_path.read_text(errors="replace")
    assert "/v2/user/login?" in logged  # the logins are logged, their secrets are not
    for secret in (password, wrong, token):
        assert secret not in logged


def test_sigterm_stops_every_process(system, data_dir):
    _, _, process, _ = system
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 8
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    assert not (data_dir / "run.json").exists()


def call_text(url: str, headers: dict | None = None) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None, ""
