"""The fixed-window counters behind the login and sign-up limits, against an in-memory Redis."""

from __future__ import annotations

import logging

import fakeredis
import pytest

from web import ratelimit
from web.ratelimit import WINDOW_SECONDS, count, exceeded, hit, retry_after

START = 1_700_000_000 - 1_700_000_000 % WINDOW_SECONDS


@pytest.fixture
def store():
    return fakeredis.FakeRedis()


@pytest.fixture
def clock(monkeypatch):
    """The time, set by the test: [seconds since the epoch]."""
    now = [START + 10.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    return now


def test_nothing_counted_exceeds_nothing(store):
    assert exceeded({"login:alice": 1, "address:1.2.3.4": 5}, store=store) is False


def test_a_key_is_exceeded_once_counted_limit_times(store):
    results = []
    for _ in range(4):
        results.append(exceeded({"k": 3}, store=store))
        count("k", store=store)
    assert results == [False, False, False, True]
    assert exceeded({"k": 3}, store=store) is True


def test_checking_counts_nothing(store):
    for _ in range(5):
        assert exceeded({"k": 1}, store=store) is False


def test_any_key_over_its_own_limit_exceeds(store):
    count("per-name", "per-address", store=store)
    count("per-address", store=store)
    assert exceeded({"per-name": 5, "per-address": 2}, store=store) is True
    assert exceeded({"per-name": 1, "per-address": 5}, store=store) is True
    assert exceeded({"per-name": 2, "per-address": 3}, store=store) is False


def test_a_limit_of_zero_is_exceeded_at_once(store):
    assert exceeded({"k": 0}, store=store) is True
    assert hit("h", 0, store=store) is False


def test_count_answers_each_keys_new_count(store):
    assert count("a", "b", store=store) == [1, 1]
    assert count("a", store=store) == [2]
    assert count("b", "a", store=store) == [2, 3]


def test_each_key_is_counted_separately(store):
    count("login:alice:1.2.3.4", "login:alice:1.2.3.4", store=store)
    assert exceeded({"login:alice:1.2.3.4": 2}, store=store) is True
    assert exceeded({"login:bob:1.2.3.4": 2}, store=store) is False
    assert exceeded({"login:alice:5.6.7.8": 2}, store=store) is False


def test_hit_counts_and_allows_up_to_the_limit(store):
    assert [hit("signup:1.2.3.4", 3, store=store) for _ in range(5)] == [True] * 3 + [False] * 2


def test_retry_after_is_the_time_left_in_the_window(clock):
    clock[0] = START + 600.5
    assert retry_after() == WINDOW_SECONDS - 600


def test_retry_after_is_always_within_one_window():
    assert 1 <= retry_after() <= WINDOW_SECONDS


def test_a_new_window_starts_a_new_count(store, clock):
    count("k", store=store)
    assert exceeded({"k": 1}, store=store) is True
    clock[0] = START + WINDOW_SECONDS + 1.0
    assert exceeded({"k": 1}, store=store) is False
    assert hit("k", 1, store=store) is True


def test_counters_expire_so_redis_does_not_fill_up(store):
    count("login:carol:1.2.3.4", store=store)
    (name,) = store.keys("petstore:ratelimit:login:carol:1.2.3.4:*")
    assert 0 < store.ttl(name) <= WINDOW_SECONDS


def test_the_expiry_is_set_once_and_not_pushed_back_by_later_counts(store):
    count("k", store=store)
    (name,) = store.keys("petstore:ratelimit:k:*")
    store.expire(name, 100)
    count("k", store=store)
    assert store.ttl(name) <= 100
    assert int(store.get(name)) == 2


def test_without_redis_everything_is_allowed_and_a_warning_is_logged(caplog):
    server = fakeredis.FakeServer()
    server.connected = False
    down = fakeredis.FakeRedis(server=server)
    with caplog.at_level(logging.WARNING, logger=ratelimit.log.name):
        assert exceeded({"k": 0}, store=down) is False
        assert count("k", store=down) is None
        assert hit("k", 0, store=down) is True
    assert len(caplog.records) == 3
    assert all("Redis unavailable" in record.getMessage() for record in caplog.records)
