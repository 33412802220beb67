"""Saga definitions that new sagas no longer start on, kept while sagas started on them
may still be in flight: they finish on the steps they started with.

When a deploy changes a definition in `sagas.orders`, copy the old one here (with a new
Python name, the same kind and steps) and record the new version in
`sagas/versions.json`; `celery -A workers saga check` fails until both are done. Remove a
retired definition once `celery -A workers saga versions` shows no saga in flight on it.
"""

from __future__ import annotations

from sagas.definition import SagaDefinition

RETIRED: tuple[SagaDefinition, ...] = ()
