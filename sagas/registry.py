"""Every saga definition, by kind."""

from sagas.definition import SagaDefinition
from sagas.orders import approve_order, cancel_order, create_order, deliver_order

DEFINITIONS: dict[str, SagaDefinition] = {
    d.kind: d for d in (create_order, approve_order, deliver_order, cancel_order)
}


def definition_of(kind: str) -> SagaDefinition:
    return DEFINITIONS[kind]
