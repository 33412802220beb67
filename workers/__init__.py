"""The Celery side: one task module per service and the outbox relay, which publishes
events to their subscribers (`models.events.SUBSCRIBERS`).

`celery -A workers worker -Q pets` runs the pet service's worker.
"""

from workers import logs  # noqa: F401  (connects the signals that name sagas in logs)
from workers.celery_app import app

__all__ = ["app"]
