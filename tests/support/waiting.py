"""Waiting for asynchronous work without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 15.0, interval: float = 0.05) -> T:
    """The first truthy result of `check`, or AssertionError with the last one.

    It shows that something happens; `timeout` is a deadline, never a figure under test.
    It cannot show that nothing happens: a claim of absence needs a moment after which
    nothing more can (a worker idle, a relay run to its end), not a wait that ran out."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still {result!r} after {timeout}s")
        time.sleep(interval)
