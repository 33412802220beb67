"""The Celery side: one task module per service and the outbox relay, which publishes
events to their subscribers (`models.events.SUBSCRIBERS`).

`celery -A workers worker -Q pets` runs the pet service's worker.

Every process that loads the Celery app (a worker, beat, Flower, the API, the
`celery -A workers saga ...` commands) imports this package first, and here the app is set
up with its after-commit relay: whatever a transaction wrote to the outbox is published
right after its commit, in the process that committed it, not left for the periodic relay.
"""

# guardrails: the worker refuses unsafe settings; logs: the signals that name sagas in logs.
from workers import guardrails, logs  # noqa: F401
from workers.celery_app import app
from workers.relay import install as install_relay

install_relay()

__all__ = ["app"]
