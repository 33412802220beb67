"""All configuration, read once from the environment (12-factor)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _sqlalchemy_url(url: str) -> str:
    """Accept the usual `postgresql://` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _owner(value: str) -> tuple[str, str] | None:
    if not value:
        return None
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise ValueError("PETSTORE_OWNER must look like username:password")
    return username, password


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    port: int
    flower_port: int
    owner: tuple[str, str] | None
    data_dir: Path
    upload_dir: Path
    max_upload_bytes: int
    token_ttl_seconds: int
    login_attempts_per_hour: int
    outbox_relay_interval: float
    sweep_interval: float
    order_wait_seconds: float
    retry_scale: float
    duplicate_deliveries: bool

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> Settings:
        data_dir = Path(env.get("PETSTORE_DATA_DIR", PROJECT_ROOT / ".data"))
        return cls(
            database_url=_sqlalchemy_url(env.get("DATABASE_URL", "")),
            redis_url=env.get("REDIS_URL", ""),
            port=int(env.get("PORT", "8000")),
            flower_port=int(env.get("FLOWER_PORT", "5555")),
            owner=_owner(env.get("PETSTORE_OWNER", "owner:owner")),
            data_dir=data_dir,
            upload_dir=Path(env.get("PETSTORE_UPLOAD_DIR", data_dir / "uploads")),
            max_upload_bytes=int(env.get("PETSTORE_MAX_UPLOAD_BYTES", str(5 * 1024 * 1024))),
            token_ttl_seconds=int(env.get("PETSTORE_TOKEN_TTL", "3600")),
            login_attempts_per_hour=int(env.get("PETSTORE_LOGIN_LIMIT", "20")),
            outbox_relay_interval=float(env.get("PETSTORE_OUTBOX_INTERVAL", "2")),
            sweep_interval=float(env.get("PETSTORE_SWEEP_INTERVAL", "2")),
            order_wait_seconds=float(env.get("PETSTORE_ORDER_WAIT", "5")),
            retry_scale=float(env.get("PETSTORE_RETRY_SCALE", "1")),
            # A fault for tests and the chaos suite: the relay sends every message twice.
            duplicate_deliveries=env.get("PETSTORE_DUPLICATE_DELIVERIES", "") in ("1", "true"),
        )


@cache
def get_settings() -> Settings:
    """The process's settings; `DATABASE_URL` and `REDIS_URL` must be set by then."""
    settings = Settings.from_env()
    missing = [n for n, v in (("DATABASE_URL", settings.database_url),
                              ("REDIS_URL", settings.redis_url)) if not v]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not set: use `petstore dev` (or `make run`) to start "
            "embedded servers, or point them at real ones"
        )
    return settings
