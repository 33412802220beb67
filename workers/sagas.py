"""The orchestrator's own periodic work."""

from __future__ import annotations

from models.db import unit_of_work
from sagas import engine
from workers.celery_app import app


@app.task(name="sagas.sweep")
def sweep() -> int:
    """Dispatch again the step of every saga that made no progress past its timeout."""
    with unit_of_work() as session:
        return engine.sweep(session)
