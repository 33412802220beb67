"""A participant's refusal is a type the saga definition imports, and the API's answer to a
refused order change is that type's status: renaming a refusal fails here or at import."""

from __future__ import annotations

import pytest

from models.order import OrderInWrongState, OrderNotPlaced, TooManyOpenOrders
from models.pet import PetNotAvailable, PetNotFound
from sagas.orders import create_order
from sagas.registry import DEFINITIONS
from web.errors import status_of

DECLARED = sorted({(definition.kind, step.name, error)
                   for definition in DEFINITIONS.values() for step in definition.steps
                   for error in step.business_errors},
                  key=lambda found: (found[0], found[1], found[2].__name__))


@pytest.mark.parametrize(("kind", "step", "refusal"), DECLARED,
                         ids=[f"{k}.{s}.{e.__name__}" for k, s, e in DECLARED])
def test_every_refusal_a_saga_declares_has_an_http_answer(kind, step, refusal):
    assert status_of(refusal) in (404, 409), f"{kind}.{step}: {refusal.__name__}"


def test_a_refusal_is_found_by_the_name_the_saga_log_records():
    assert create_order.refusal("PetNotAvailable") is PetNotAvailable
    assert create_order.refusal("TooManyOpenOrders") is TooManyOpenOrders


def test_an_error_no_step_declares_is_no_refusal():
    assert create_order.refusal("OrderNotPlaced") is None  # another saga's refusal
    assert create_order.refusal("InjectedFailure") is None
    assert create_order.refusal(None) is None


def test_a_refusal_answers_as_the_nearest_kind_of_error_the_api_knows():
    assert status_of(PetNotFound) == 404
    assert status_of(OrderNotPlaced) == status_of(OrderInWrongState) == 409
    assert status_of(ValueError) is None
