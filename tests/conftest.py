"""The test suite's servers: real PostgreSQL and Redis, embedded unless given.

With DATABASE_URL and REDIS_URL set, tests use those servers (in a fresh database that
is dropped afterwards); without them, embedded servers start in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

_state: dict = {}


def _server_url(database_url: str) -> tuple[str, str]:
    """(libpq URL of the server's `postgres` database, name for a fresh test database)."""
    url = make_url(database_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False), f"petstore_test_{uuid.uuid4().hex[:8]}"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    data_dir = Path(tempfile.mkdtemp(prefix="petstore-test-"))
    _state["data_dir"] = data_dir
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not (database_url and redis_url):
        from petstore.embedded import EmbeddedServers, free_port

        servers = EmbeddedServers(data_dir / "servers", redis_port=free_port()).start()
        _state["servers"] = servers
        database_url = database_url or servers.database_url
        redis_url = redis_url or servers.redis_url
    admin_url, database = _server_url(database_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    _state["admin"] = (admin_url, database)
    os.environ.update(
        DATABASE_URL=make_url(database_url).set(database=database).render_as_string(False),
        REDIS_URL=redis_url,
        PETSTORE_DATA_DIR=str(data_dir),
        PETSTORE_OUTBOX_INTERVAL="0.5",
        PETSTORE_SWEEP_INTERVAL="0.5",
        PETSTORE_RETRY_SCALE="0.05",
        # Every test signs up and fails logins from 127.0.0.1; the limits' own tests set
        # theirs and use addresses of their own.
        PETSTORE_SIGNUP_LIMIT="1000000",
        PETSTORE_LOGIN_ADDRESS_LIMIT="1000000",
        PETSTORE_OWNER=f"owner{uuid.uuid4().hex[:6]}:{uuid.uuid4().hex}",
    )
    from models.migrate import upgrade

    upgrade()


def pytest_unconfigure(config: pytest.Config) -> None:
    if "admin" not in _state:
        return
    from models.db import dispose

    dispose()
    admin_url, database = _state.pop("admin")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if servers := _state.pop("servers", None):
        servers.stop()
    shutil.rmtree(_state.pop("data_dir"), ignore_errors=True)


@pytest.fixture(scope="module")
def worker():
    """A real Celery worker with beat, consuming every queue, for the test module."""
    from tests.support.worker import WorkerProcess

    process = WorkerProcess(_state["data_dir"] / "worker.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def app():
    from models.db import unit_of_work
    from models.user import ensure_owner
    from petstore.settings import get_settings
    from web import create_app

    with unit_of_work() as session:
        ensure_owner(session, *get_settings().owner)
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def _login(client, username: str, password: str) -> dict[str, str]:
    response = client.get("/v2/user/login", query_string={"username": username,
                                                          "password": password})
    assert response.status_code == 200, response.json
    return {"api_key": response.json}


@pytest.fixture(scope="session")
def owner(app) -> dict[str, str]:
    """Headers that authenticate the store owner."""
    from petstore.settings import get_settings

    return _login(app.test_client(), *get_settings().owner)


@pytest.fixture
def sign_up(client):
    """Create a customer with a random name; returns (username, password, headers)."""

    def create() -> tuple[str, str, dict[str, str]]:
        username, password = f"user{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        response = client.post("/v2/user", json={"username": username, "password": password})
        assert response.status_code == 200, response.json
        return username, password, _login(client, username, password)

    return create


@pytest.fixture
def customer(sign_up) -> dict[str, str]:
    """Headers that authenticate a fresh customer."""
    return sign_up()[2]
