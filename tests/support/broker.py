"""A broker that is down, for tests of what an outage delays and what it loses (nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu import Connection


@contextmanager
def broker_down() -> Iterator[Connection]:
    """Stands in for `workers.relay.broker`: a real connection to a port nobody serves."""
    with Connection("redis://127.0.0.1:1/0") as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        yield connection
