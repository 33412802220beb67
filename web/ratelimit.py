"""A fixed-window counter in Redis: enough to slow password guessing down."""

from __future__ import annotations

import time
from functools import cache

import redis

from petstore.settings import get_settings

WINDOW_SECONDS = 3600


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=2)


def hit(key: str, limit: int, store: redis.Redis | None = None) -> tuple[bool, int]:
    """Count one attempt; (allowed, seconds until the window resets)."""
    store = store or client()
    window = int(time.time() // WINDOW_SECONDS)
    name = f"petstore:ratelimit:{key}:{window}"
    pipe = store.pipeline()  # MULTI/EXEC: the window's expiry is set with its first hit
    pipe.set(name, 0, ex=WINDOW_SECONDS, nx=True)
    pipe.incr(name)
    _, count = pipe.execute()
    retry_after = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
    return count <= limit, retry_after
