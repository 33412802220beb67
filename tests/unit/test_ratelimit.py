"""The fixed-window login limiter, against an in-memory Redis."""

from __future__ import annotations

import fakeredis
import pytest

from web import ratelimit
from web.ratelimit import WINDOW_SECONDS, hit


@pytest.fixture
def store():
    return fakeredis.FakeRedis()


def test_attempts_up_to_the_limit_are_allowed_and_the_next_is_refused(store):
    results = [hit("login:alice:1.2.3.4", 3, store=store)[0] for _ in range(5)]
    assert results == [True, True, True, False, False]


def test_a_limit_of_zero_refuses_the_first_attempt(store):
    assert hit("login:alice:1.2.3.4", 0, store=store)[0] is False


def test_each_key_is_counted_separately(store):
    for _ in range(2):
        hit("login:alice:1.2.3.4", 2, store=store)
    assert hit("login:alice:1.2.3.4", 2, store=store)[0] is False
    assert hit("login:bob:1.2.3.4", 2, store=store)[0] is True
    assert hit("login:alice:5.6.7.8", 2, store=store)[0] is True


def test_retry_after_is_the_time_left_in_the_window(store, monkeypatch):
    start = 1_700_000_000 - 1_700_000_000 % WINDOW_SECONDS
    monkeypatch.setattr(ratelimit.time, "time", lambda: start + 600.5)
    _, retry_after = hit("k", 1, store=store)
    assert retry_after == WINDOW_SECONDS - 600


def test_retry_after_is_always_within_one_window(store):
    _, retry_after = hit("k", 1, store=store)
    assert 1 <= retry_after <= WINDOW_SECONDS


def test_a_new_window_starts_a_new_count(store, monkeypatch):
    start = 1_700_000_000 - 1_700_000_000 % WINDOW_SECONDS
    now = [start + 10.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    assert hit("k", 1, store=store)[0] is True
    assert hit("k", 1, store=store)[0] is False
    now[0] = start + WINDOW_SECONDS + 1.0
    assert hit("k", 1, store=store)[0] is True


def test_counters_expire_so_redis_does_not_fill_up(store):
    hit("login:carol:1.2.3.4", 5, store=store)
    (name,) = store.keys("petstore:ratelimit:login:carol:1.2.3.4:*")
    assert 0 < store.ttl(name) <= WINDOW_SECONDS


def test_the_expiry_is_set_once_and_not_pushed_back_by_later_hits(store, monkeypatch):
    hit("k", 5, store=store)
    (name,) = store.keys("petstore:ratelimit:k:*")
    store.expire(name, 100)
    hit("k", 5, store=store)
    assert store.ttl(name) <= 100
    assert int(store.get(name)) == 2
