"""A fixed-window counter in Redis: enough to slow password guessing down."""

from __future__ import annotations

import logging
import time
from functools import cache

import redis

from petstore.settings import get_settings

WINDOW_SECONDS = 3600
log = logging.getLogger(__name__)


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=2,
                                socket_connect_timeout=1, retry=None)


def hit(key: str, limit: int, store: redis.Redis | None = None) -> tuple[bool, int]:
    """Count one attempt; (allowed, seconds until the window resets).

    With Redis unreachable the attempt is allowed: a broker outage must not lock every
    user out, and the passwords' scrypt cost still slows guessing down.
    """
    store = store or client()
    window = int(time.time() // WINDOW_SECONDS)
    name = f"petstore:ratelimit:{key}:{window}"
    retry_after = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
    pipe = store.pipeline()  # MULTI/EXEC: the window's expiry is set with its first hit
    pipe.set(name, 0, ex=WINDOW_SECONDS, nx=True)
    pipe.incr(name)
    try:
        _, count = pipe.execute()
    except redis.RedisError as exc:
        log.warning("login rate limit not counted, Redis unavailable: %s", exc)
        return True, retry_after
    return count <= limit, retry_after
