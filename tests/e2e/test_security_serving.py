"""The API as gunicorn serves it with petstore/gunicorn_conf.py (as `make run` and
docker-compose.yml do): oversized requests are refused at once with the API's JSON errors,
the spec's `api_key` header still works, and the logs keep no password or token."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from common.settings import PROJECT_ROOT, get_settings
from petstore.embedded import free_port
from tests.support.processes import stop_group
from tests.support.waiting import eventually

GUNICORN = Path(sys.executable).with_name("gunicorn")
MiB = 1024 * 1024


@dataclass
class Server:
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _ready(base: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(f"{base}/store/inventory", timeout=5).status_code == 200
    return False


@pytest.fixture(scope="module")
def server(app, tmp_path_factory) -> Iterator[Server]:
    """gunicorn with the project's configuration, one worker, on the test session's
    database and Redis (the `app` fixture has created the store owner there)."""
    started = Server(free_port(), tmp_path_factory.mktemp("gunicorn") / "gunicorn.log")
    # No control socket: it would take over the one other gunicorns on this host use.
    command = [str(GUNICORN), "-c", "python:petstore.gunicorn_conf", "--bind",
               f"127.0.0.1:{started.port}", "--workers", "1", "--no-control-socket",
               "web:create_app()"]
    with started.log.open("wb") as out:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=os.environ.copy(),
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _ready(started.base):
            assert process.poll() is None, f"gunicorn exited:\n{started.log_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not up in 60 s:\n{started.log_text()[-3000:]}"
            time.sleep(0.2)
        yield started
    finally:
        stop_group(process)


def exchange(port: int, parts: Iterable[bytes]) -> bytes:
    """Send a raw request and read the answer. The server may answer and close before
    it has read everything: sending then fails, and the answer is still there to read."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for part in parts:
                sock.sendall(part)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return bytes(received)


def json_error(answer: bytes, status: int) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == str(status), answer[:500]
    headers = {name.lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == status and error["status"] and error["message"]
    return error


def request(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def huge_url(size: int) -> Iterator[bytes]:
    yield b"GET /v2/pet/findByTags?tags="
    for _ in range(size // MiB):
        yield b"a" * MiB
    yield b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_a_40_mb_url_is_a_json_414_and_the_worker_serves_on(server):
    error = json_error(exchange(server.port, huge_url(40 * MiB)), 414)
    assert "8190" in error["message"]
    assert requests.get(f"{server.base}/store/inventory", timeout=10).status_code == 200


def test_too_many_headers_are_a_json_431(server):
    filler = [f"X-Filler-{i}: {i}" for i in range(200)]
    json_error(exchange(server.port, [request("/v2/store/inventory", *filler)]), 431)


def test_an_oversized_header_is_a_json_431(server):
    big = "X-Big: " + "a" * 10_000
    json_error(exchange(server.port, [request("/v2/store/inventory", big)]), 431)


def test_a_request_line_that_is_not_http_is_a_json_400(server):
    json_error(exchange(server.port, [b"NOT HTTP AT ALL\r\n\r\n"]), 400)


def log_in(server: Server, username: str, password: str) -> requests.Response:
    return requests.get(f"{server.base}/user/login", timeout=10,
                        params={"username": username, "password": password})


def test_the_spec_api_key_header_still_works(server):
    username, password = get_settings().owner
    token = log_in(server, username, password).json()
    answer = requests.get(f"{server.base}/user/{username}", headers={"api_key": token},
                          timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == username


def test_a_long_but_reasonable_tag_list_is_served(server):
    tags = ",".join(f"tag{i:02d}-" + "x" * 90 for i in range(50))  # 5 KB of query
    answer = requests.get(f"{server.base}/pet/findByTags", params={"tags": tags}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == []


def test_the_logs_keep_no_password_or_token(server):
    username, password = get_settings().owner
    token = log_in(server, username, password).json()
    wrong = uuid.uuid4().hex
    assert log_in(server, f"nobody{uuid.uuid4().hex[:8]}", wrong).status_code == 401
    requests.get(f"{server.base}/user/{username}", params={"api_key": token},
                 headers={"api_key": token}, timeout=10)
    # A request line gunicorn refuses is quoted in its error log.
    unparsed = uuid.uuid4().hex
    exchange(server.port, [f"GET /v2/user/login?password={unparsed}\x01 HTTP/1.1\r\n\r\n"
                           .encode()])
    # Each line is written once its answer has gone: wait for the last request's.
    eventually(lambda: server.log_text().count("Invalid HTTP request line") >= 1
               and server.log_text().count(f"/v2/user/{username}?api_key=") >= 1)
    log = server.log_text()
    for secret in (password, wrong, token, unparsed):
        assert secret not in log
    assert log.count("password=[redacted]") >= 3
    assert "api_key=[redacted]" in log
