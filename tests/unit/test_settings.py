"""Settings come from the environment; here a plain dict stands in for it.

Where the environment names no servers, a running `petstore dev` of the same data folder
does, through its run file.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common import settings as settings_module
from common.settings import RunRecord, ServerNotFound, Settings

BASE = {"DATABASE_URL": "postgresql://u:pw@db.example:5432/petstore",
        "REDIS_URL": "redis://cache:6379/0"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


@pytest.mark.parametrize(("given", "used"), [
    ("postgresql://u:pw@host:5432/db", "postgresql+psycopg://u:pw@host:5432/db"),
    ("postgres://u:pw@host/db", "postgresql+psycopg://u:pw@host/db"),
    ("postgresql+psycopg://u@host/db", "postgresql+psycopg://u@host/db"),
    ("postgresql:///db?host=/tmp", "postgresql+psycopg:///db?host=/tmp"),
])
def test_database_urls_are_normalised_to_the_psycopg_driver(given, used):
    assert settings(DATABASE_URL=given).database_url == used


def test_a_missing_database_url_stays_empty(tmp_path):
    assert Settings.from_env({"PETSTORE_DATA_DIR": str(tmp_path)}).database_url == ""


def test_the_redis_url_is_taken_as_given():
    assert settings().redis_url == "redis://cache:6379/0"


def test_the_owner_defaults_to_owner_owner():
    assert settings().owner == ("owner", "owner")


def test_the_owner_is_username_colon_password():
    assert settings(PETSTORE_OWNER="boss:s3cret").owner == ("boss", "s3cret")


def test_the_owner_password_may_itself_contain_colons():
    assert settings(PETSTORE_OWNER="boss:pa:ss:word").owner == ("boss", "pa:ss:word")


def test_an_empty_owner_means_no_owner():
    assert settings(PETSTORE_OWNER="").owner is None


@pytest.mark.parametrize("value", ["boss", "boss:", ":s3cret", ":"])
def test_an_owner_without_both_username_and_password_is_refused(value):
    with pytest.raises(ValueError, match="username:password"):
        settings(PETSTORE_OWNER=value)


def test_numbers_are_read_from_the_environment():
    s = settings(PORT="9000", FLOWER_PORT="9555", PETSTORE_MAX_UPLOAD_BYTES="1024",
                 PETSTORE_TOKEN_TTL="60", PETSTORE_LOGIN_LIMIT="3",
                 PETSTORE_OUTBOX_INTERVAL="0.25")
    assert (s.port, s.flower_port, s.max_upload_bytes) == (9000, 9555, 1024)
    assert (s.token_ttl_seconds, s.login_attempts_per_hour) == (60, 3)
    assert s.outbox_relay_interval == 0.25


def test_defaults_match_the_readme():
    s = settings()
    assert (s.port, s.flower_port) == (8000, 5555)
    assert s.max_upload_bytes == 5 * 1024 * 1024
    assert s.token_ttl_seconds == 3600
    assert s.login_attempts_per_hour == 20
    assert s.outbox_relay_interval == 2.0


def test_uploads_live_under_the_data_dir_unless_told_otherwise(tmp_path):
    s = settings(PETSTORE_DATA_DIR=str(tmp_path))
    assert s.data_dir == tmp_path
    assert s.upload_dir == tmp_path / "uploads"
    elsewhere = settings(PETSTORE_DATA_DIR=str(tmp_path), PETSTORE_UPLOAD_DIR="/srv/up")
    assert elsewhere.upload_dir == Path("/srv/up")


def test_settings_are_immutable():
    s = settings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


# Where the system runs: `<data folder>/run.json`, written by `petstore dev`.

EMBEDDED = {"database_url": "postgresql://postgres:@/petstore?host=/data/postgres",
            "redis_url": "redis://127.0.0.1:6390/0"}


def a_run(pid: int, **urls: str) -> RunRecord:
    return RunRecord(pid=pid, api_url="http://127.0.0.1:8000/v2",
                     flower_url="http://127.0.0.1:5555", **urls)


def a_finished_process() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_without_urls_in_the_environment_the_running_systems_servers_are_used(tmp_path):
    a_run(os.getpid(), **EMBEDDED).write(tmp_path)
    found = Settings.from_env({"PETSTORE_DATA_DIR": str(tmp_path)})
    assert found.database_url == "postgresql+psycopg://postgres:@/petstore?host=/data/postgres"
    assert found.redis_url == "redis://127.0.0.1:6390/0"


def test_the_environment_wins_over_the_run_file(tmp_path):
    a_run(os.getpid(), **EMBEDDED).write(tmp_path)
    found = settings(PETSTORE_DATA_DIR=str(tmp_path))
    assert found.database_url == "postgresql+psycopg://u:pw@db.example:5432/petstore"
    assert found.redis_url == "redis://cache:6379/0"
    only_redis = Settings.from_env({"PETSTORE_DATA_DIR": str(tmp_path),
                                    "REDIS_URL": "redis://cache:6379/0"})
    assert only_redis.redis_url == "redis://cache:6379/0"
    assert only_redis.database_url.endswith("host=/data/postgres")


def test_the_run_file_of_a_run_that_is_gone_is_ignored(tmp_path):
    a_run(a_finished_process(), **EMBEDDED).write(tmp_path)
    found = Settings.from_env({"PETSTORE_DATA_DIR": str(tmp_path)})
    assert (found.database_url, found.redis_url) == ("", "")
    assert RunRecord.read(tmp_path) is None


def test_an_unreadable_run_file_is_ignored(tmp_path):
    RunRecord.path(tmp_path).write_text("{not json")
    assert RunRecord.read(tmp_path) is None
    assert Settings.from_env({"PETSTORE_DATA_DIR": str(tmp_path)}).redis_url == ""


def test_the_run_file_is_json_readable_by_its_owner_only(tmp_path):
    record = a_run(os.getpid(), **EMBEDDED)
    record.write(tmp_path)
    path = tmp_path / "run.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert RunRecord.read(tmp_path) == record
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left
    RunRecord.remove(tmp_path)
    RunRecord.remove(tmp_path)  # twice: nothing to remove is no error
    assert not path.exists()


@pytest.fixture
def no_servers_in_the_environment(monkeypatch, tmp_path):
    """The process's settings read afresh from an environment without server URLs."""
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("PETSTORE_DATA_DIR", str(tmp_path))
    settings_module.get_settings.cache_clear()
    yield tmp_path
    settings_module.get_settings.cache_clear()


def test_a_missing_server_is_one_line_that_says_how_to_point_at_it(
        no_servers_in_the_environment):
    with pytest.raises(ServerNotFound) as missing:
        settings_module.get_settings()
    message = missing.value.format_message()
    assert "\n" not in message
    assert message.startswith("no database and no broker: DATABASE_URL and REDIS_URL")
    assert str(no_servers_in_the_environment / "run.json") in message
    assert "start `make run` or set DATABASE_URL and REDIS_URL" in message


def test_a_run_whose_servers_came_from_its_environment_is_named(
        no_servers_in_the_environment):
    a_run(os.getpid(), redis_url=EMBEDDED["redis_url"]).write(no_servers_in_the_environment)
    with pytest.raises(ServerNotFound) as missing:
        settings_module.get_settings()
    message = missing.value.format_message()
    assert message.startswith("no database: DATABASE_URL is not set")
    assert f"PID {os.getpid()}" in message


def test_the_process_settings_use_a_running_systems_servers(no_servers_in_the_environment):
    a_run(os.getpid(), **EMBEDDED).write(no_servers_in_the_environment)
    assert settings_module.get_settings().redis_url == EMBEDDED["redis_url"]
