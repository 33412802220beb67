"""Every saga definition this deployment runs, by kind and version.

A saga runs to its end on the definition it started with. A deploy that changes one keeps
the old definition in `sagas.retired` while sagas started on it may be in flight (`celery
-A workers saga versions` shows which); `celery -A workers saga check` says when a change
would strand some.
"""

from __future__ import annotations

from typing import Any

from common.settings import get_settings
from sagas.definition import SagaDefinition
from sagas.orders import approve_order, cancel_order, create_order, deliver_order
from sagas.retired import RETIRED

# The definitions of sagas/orders.py, which new sagas start on.
DEFINITIONS: dict[str, SagaDefinition] = {
    d.kind: d for d in (create_order, approve_order, deliver_order, cancel_order)
}


class UnknownDefinition(LookupError):
    """A saga's kind and version that this deployment does not run."""


def definition_of(kind: str, version: str | None = None) -> SagaDefinition:
    """The definition of `kind` at `version` (the current one by default), its retries'
    waits scaled by PETSTORE_RETRY_SCALE (a knob for tests and demos: the engine's rules
    never see it)."""
    definition = DEFINITIONS.get(kind)
    if definition is None or version not in (None, definition.version):
        definition = next((d for d in RETIRED if (d.kind, d.version) == (kind, version)), None)
    if definition is None:
        raise UnknownDefinition(f"no {kind} saga definition of version {version or 'current'} "
                                "is registered here (see sagas/retired.py)")
    scale = get_settings().retry_scale
    return definition if scale == 1 else definition.with_retries_scaled(scale)


def registered() -> list[SagaDefinition]:
    """Every definition a saga may run on: the retired ones, then the current ones."""
    return [*RETIRED, *DEFINITIONS.values()]


def current_step(saga: Any) -> str:
    """The name of the step a saga (a row or a state: kind, version, step index) is at."""
    return step_name(saga.kind, saga.definition_version, saga.current_step)


def step_name(kind: str, version: str | None, index: int) -> str:
    """The name of step `index` of a saga of this kind and version, for reports."""
    try:
        return definition_of(kind, version).steps[index].name
    except (UnknownDefinition, IndexError):
        return f"step {index}"
