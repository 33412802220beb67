"""A saga definition's version changes exactly when a saga in flight could be stranded by
the change: its steps, their order and their tasks; not its retry policies or timeouts."""

from __future__ import annotations

from dataclasses import replace

from sagas.definition import Retry, SagaDefinition, Step
from sagas.orders import create_order

HOLD = Step("hold_room", action="hotels.hold", compensation="hotels.release")
PAY = Step("pay", action="cards.charge", compensation="cards.refund")
TRIP = SagaDefinition("trip", (HOLD, PAY))


def test_equal_definitions_have_one_version():
    assert SagaDefinition("trip", (HOLD, PAY)).version == TRIP.version
    assert len(TRIP.version) == 12


def test_a_step_inserted_renamed_reordered_or_given_another_task_is_a_new_version():
    mail = Step("mail", action="mail.send")
    changed = [
        SagaDefinition("trip", (HOLD, mail, PAY)),
        SagaDefinition("trip", (replace(HOLD, name="book_room"), PAY)),
        SagaDefinition("trip", (PAY, HOLD)),
        SagaDefinition("trip", (replace(HOLD, compensation="hotels.cancel"), PAY)),
        SagaDefinition("trip", (HOLD, PAY), if_not_completed="hotels.tell"),
    ]
    versions = {TRIP.version, *(definition.version for definition in changed)}
    assert len(versions) == len(changed) + 1


def test_retries_and_timeouts_change_no_version():
    patient = replace(HOLD, retry=Retry(attempts=9), timeout=60.0)
    assert SagaDefinition("trip", (patient, PAY)).version == TRIP.version


def test_the_order_sagas_have_versions():
    assert create_order.version == SagaDefinition(create_order.kind, create_order.steps,
                                                  create_order.if_not_completed).version
