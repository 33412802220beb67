"""PETSTORE_DUPLICATE_DELIVERIES, a knob for tests and the chaos suite, wraps publishing
from the outside: every message is sent twice, and nothing else changes."""

from __future__ import annotations

import pytest

from sagas.faults import publishing


def sender() -> tuple[list[tuple], object]:
    sent: list[tuple] = []
    return sent, lambda *args, **kwargs: sent.append((args, kwargs))


@pytest.mark.parametrize("value", ["", "0", "no"])
def test_without_the_knob_each_message_is_sent_once(monkeypatch, value):
    monkeypatch.setenv("PETSTORE_DUPLICATE_DELIVERIES", value)
    sent, send = sender()
    publishing(send)("orders.place_order", kwargs={"saga_id": "s"}, task_id="t")
    assert sent == [(("orders.place_order",), {"kwargs": {"saga_id": "s"}, "task_id": "t"})]


@pytest.mark.parametrize("value", ["1", "true"])
def test_with_the_knob_each_message_is_sent_twice_alike(monkeypatch, value):
    monkeypatch.setenv("PETSTORE_DUPLICATE_DELIVERIES", value)
    sent, send = sender()
    publishing(send)("orders.place_order", kwargs={"saga_id": "s"}, task_id="t")
    assert len(sent) == 2 and sent[0] == sent[1]
