"""Fixed-window counters in Redis: enough to slow password guessing and sign-up floods down.

With Redis unreachable every attempt is allowed: a broker outage must not lock every user
out, and the passwords' scrypt cost still slows guessing down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from functools import cache

import redis

from common.settings import get_settings

WINDOW_SECONDS = 3600
log = logging.getLogger(__name__)


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, socket_timeout=2,
                                socket_connect_timeout=1, retry=None)


def _name(key: str) -> str:
    return f"petstore:ratelimit:{key}:{int(time.time() // WINDOW_SECONDS)}"


def retry_after() -> int:
    """Seconds until the current window ends and every count starts again from zero."""
    return WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS


def exceeded(limits: Mapping[str, int], store: redis.Redis | None = None) -> bool:
    """Whether any key has been counted `limit` times or more in this window."""
    if not limits:
        return False
    store = store or client()
    try:
        counts = store.mget([_name(key) for key in limits])
    except redis.RedisError as exc:
        log.warning("rate limit not checked, Redis unavailable: %s", exc)
        return False
    return any(int(seen or 0) >= limit for seen, limit in zip(counts, limits.values(),
                                                               strict=True))


def count(*keys: str, store: redis.Redis | None = None) -> list[int] | None:
    """Count one attempt under each key; the keys' new counts, or None without Redis."""
    store = store or client()
    pipe = store.pipeline()  # MULTI/EXEC: a window's expiry is set with its first count
    for name in map(_name, keys):
        pipe.set(name, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(name)
    try:
        replies = pipe.execute()
    except redis.RedisError as exc:
        log.warning("rate limit not counted, Redis unavailable: %s", exc)
        return None
    return replies[1::2]


def hit(key: str, limit: int, store: redis.Redis | None = None) -> bool:
    """Count one attempt and say whether it is within the limit. Counting first keeps
    concurrent attempts from all slipping under it."""
    counts = count(key, store=store)
    return counts is None or counts[0] <= limit
