"""Settings come from the environment; here a plain dict stands in for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from petstore.settings import Settings

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


def test_a_missing_database_url_stays_empty():
    assert Settings.from_env({}).database_url == ""


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
