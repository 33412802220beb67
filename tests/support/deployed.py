"""A deploy of the project that inserts a step into create_order, as a Celery app module:
`celery -A tests.support.deployed worker` runs the workers' code of that deploy.

The new create_order notes the order (`orders.note_order`, on the orders queue by its
name) between placing it and counting the reservation. As `sagas/retired.py` would after
the real deploy, the old create_order stays registered, so that the sagas started on it
finish on its steps; with DEPLOYED_WITHOUT_RETIRED=1 in its environment the deploy drops
it instead, the mistake `celery -A workers saga check` is there to catch.

Importing this module changes `sagas.registry` for good: a test that needs its
definitions in its own process imports it with the registry patched (and does the
deploy's change itself, with monkeypatch).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from sagas import registry
from sagas.definition import Step
from sagas.orders import create_order as before
from workers import app
from workers.steps import saga_step

NOTE_ORDER = Step("note_order", action="orders.note_order")
# The old steps with note_order after place_order.
create_order = replace(before, steps=(*before.steps[:2], NOTE_ORDER, *before.steps[2:]))
KEEPS_RETIRED = os.environ.get("DEPLOYED_WITHOUT_RETIRED") != "1"


@saga_step(NOTE_ORDER.action)
def note_order(session: Session, order: dict[str, Any]) -> dict[str, Any]:
    """Note the order: the reply merges into the saga's data."""
    return {"noted": True}


registry.DEFINITIONS[create_order.kind] = create_order
if KEEPS_RETIRED:
    registry.RETIRED = (*registry.RETIRED, before)

__all__ = ["app", "before", "create_order", "note_order"]
