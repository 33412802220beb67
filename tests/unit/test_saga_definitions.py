"""A saga definition's version changes exactly when a saga in flight could be stranded by
the change: its steps, their order and their tasks; not its retry policies or timeouts,
which a deployment may scale."""

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


def test_a_scaled_saga_waits_longer_between_tries_and_is_the_same_saga():
    slow = SagaDefinition("trip", (replace(HOLD, retry=Retry(attempts=4, backoff=0.5)), PAY))
    scaled = slow.with_retries_scaled(10)
    assert scaled.version == slow.version
    hold = scaled.steps[0]
    assert (hold.retry.attempts, hold.retry.backoff, hold.retry.max_backoff) == (4, 5.0, 300.0)
    # half to all of the doubled 5 s backoff
    assert (hold.retry.delay(2, jitter=0), hold.retry.delay(2, jitter=1)) == (5.0, 10.0)
    assert hold.compensation_retry.backoff == 10 * HOLD.compensation_retry.backoff
