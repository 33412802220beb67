"""Every saga definition, by kind, as this deployment runs them."""

from petstore.settings import get_settings
from sagas.definition import SagaDefinition
from sagas.orders import approve_order, cancel_order, create_order, deliver_order

DEFINITIONS: dict[str, SagaDefinition] = {
    d.kind: d for d in (create_order, approve_order, deliver_order, cancel_order)
}


def definition_of(kind: str) -> SagaDefinition:
    """The definition of `kind`, its retries' waits scaled by PETSTORE_RETRY_SCALE (a knob
    for tests and demos: the engine's rules never see it)."""
    definition = DEFINITIONS[kind]
    scale = get_settings().retry_scale
    return definition if scale == 1 else definition.with_retries_scaled(scale)
