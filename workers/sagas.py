"""The orchestrator's own periodic work."""

from __future__ import annotations

import logging

from models import counters
from models.db import unit_of_work
from sagas import engine
from workers.celery_app import housekeeping

log = logging.getLogger(__name__)


@housekeeping("sagas.sweep")
def sweep() -> int:
    """Dispatch again the step of every saga that made no progress past its timeout."""
    with unit_of_work() as session:
        overdue = engine.sweep(session)
    if overdue:
        log.info("dispatched again the steps of %d overdue sagas", overdue)
    return overdue


@housekeeping("sagas.fold_counters")
def fold_counters() -> bool:
    """Sum the metrics' counter rows into one per key (`models.counters`)."""
    with unit_of_work() as session:
        return counters.fold(session.connection())
