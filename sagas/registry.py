"""Every saga definition, by kind."""

from sagas.create_order import create_order
from sagas.definition import SagaDefinition

DEFINITIONS: dict[str, SagaDefinition] = {d.kind: d for d in (create_order,)}


def definition_of(kind: str) -> SagaDefinition:
    return DEFINITIONS[kind]
