"""Prometheus metrics about sagas and the outbox, read from PostgreSQL at scrape time.

The API runs as several gunicorn workers and the sagas move in Celery workers, so no
process's memory knows the whole story. The database keeps the saga figures as counters,
appended to by triggers in the transactions that change sagas and attempts and folded
(`models.counters`), so a scrape reads a few dozen rows and those added since the last
fold, however long the history; the outbox's figures read only what is pending.
It is served at `/metrics`, beside the API rather than in it, so it stays out of the
OpenAPI document. Order volume is business data: like any dashboard, it asks for
credentials by default, a bearer token (PETSTORE_METRICS_TOKEN), and with none configured
it stays closed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, Float, cast, func, select
from sqlalchemy.orm import Session

from models import counters
from models.counters import STEP_BUCKETS, saga_counts, saga_totals, step_totals
from models.db import unit_of_work
from models.outbox import OutboxMessage
from models.saga import ANSWERED, COMPENSATION, ENDED, SAGA_STATUSES
from web.api import error_response


def _seconds(start: ColumnElement, end: ColumnElement) -> ColumnElement[float]:
    # Clamped at zero: start and end may be stamped by hosts whose clocks differ a little.
    return func.greatest(cast(func.extract("epoch", end - start), Float), 0.0)


def _sagas(session: Session) -> list[Metric]:
    """Sagas by kind and status now; sagas started and ended, ever."""
    now: dict[str, dict[str, int]] = {}
    for kind, status, count in session.execute(
            select(saga_counts.c.kind, saga_counts.c.status, func.sum(saga_counts.c.n))
            .group_by(saga_counts.c.kind, saga_counts.c.status)):
        now.setdefault(kind, {})[status] = int(count)
    totals: dict[str, dict[str, int]] = {}
    for kind, event, count in session.execute(
            select(saga_totals.c.kind, saga_totals.c.event, func.sum(saga_totals.c.n))
            .group_by(saga_totals.c.kind, saga_totals.c.event)):
        totals.setdefault(kind, {})[event] = int(count)
    current = GaugeMetricFamily("petstore_sagas", "Sagas by kind and current status.",
                                labels=["kind", "status"])
    started = CounterMetricFamily("petstore_sagas_started", "Sagas started, by kind.",
                                  labels=["kind"])
    ended = CounterMetricFamily(
        "petstore_sagas_ended", "Sagas that reached an end (completed, compensated, refused, "
        "failed).", labels=["kind", "status"])
    for kind in sorted(now.keys() | totals.keys()):
        # Every status of every known kind, zeros included, so rates and alerts see series.
        for status in SAGA_STATUSES:
            current.add_metric([kind, status], now.get(kind, {}).get(status, 0))
        started.add_metric([kind], totals.get(kind, {}).get("started", 0))
        for status in ENDED:
            ended.add_metric([kind, status], totals.get(kind, {}).get(status, 0))
    return [current, started, ended]


def _compensations(session: Session) -> Metric:
    """Compensations that succeeded, by saga kind and compensating task.

    Both labels: the kind says which business flow rolled back, the task which step undid.
    """
    steps = step_totals.c
    rows = session.execute(
        select(steps.kind, steps.task_name, func.sum(steps.n))
        .where(steps.phase == COMPENSATION, steps.status == "succeeded")
        .group_by(steps.kind, steps.task_name)).all()
    family = CounterMetricFamily("petstore_saga_compensations",
                                 "Successful compensation attempts, by saga kind and task.",
                                 labels=["kind", "task_name"])
    for kind, task_name, count in sorted(rows):
        family.add_metric([kind, task_name], int(count))
    return family


def _step_durations(session: Session) -> Metric:
    """A histogram per task of how long answered attempts took."""
    by_task: dict[str, list[tuple[int, int, float]]] = {}
    steps = step_totals.c
    for task_name, bucket, count, seconds in session.execute(
            select(steps.task_name, steps.bucket, func.sum(steps.n), func.sum(steps.seconds))
            .where(steps.status.in_(ANSWERED)).group_by(steps.task_name, steps.bucket)):
        by_task.setdefault(task_name, []).append((bucket, int(count), float(seconds)))
    family = HistogramMetricFamily("petstore_saga_step_duration_seconds",
                                   "Duration of answered saga step attempts, by task.",
                                   labels=["task_name"])
    for task_name, buckets in sorted(by_task.items()):
        counts = dict.fromkeys(range(len(STEP_BUCKETS) + 1), 0)
        for bucket, count, _ in buckets:
            counts[bucket] += count
        cumulative = list(accumulate(counts[i] for i in range(len(STEP_BUCKETS))))
        family.add_metric([task_name], _buckets(cumulative, sum(counts.values())),
                          sum(seconds for _, _, seconds in buckets))
    return family


def _buckets(cumulative: Sequence[int], count: int) -> list[tuple[str, float]]:
    # Labels formatted as prometheus_client's own Histogram does ("1.0", "+Inf").
    return [*((floatToGoString(bound), n) for bound, n in zip(STEP_BUCKETS, cumulative,
                                                               strict=True)),
            ("+Inf", count)]


def _outbox(session: Session) -> list[Metric]:
    """Messages not done with, and how long the oldest has waited (0 when none): unsent ones,
    and saga commands sent but not yet taken by their receivers."""
    backlog, oldest = session.execute(
        select(func.count(),
               func.coalesce(_seconds(func.min(OutboxMessage.created_at), func.now()), 0.0))
        .where(OutboxMessage.sent_at.is_(None))).one()
    return [
        GaugeMetricFamily("petstore_outbox_backlog",
                          "Outbox messages not sent yet, or (saga commands) not yet taken.",
                          value=backlog),
        GaugeMetricFamily("petstore_outbox_oldest_unsent_seconds",
                          "Age of the oldest unsent outbox message, by the database's clock.",
                          value=float(oldest)),
    ]


class PetstoreCollector(Collector):
    """Reads every metric in one short transaction per scrape, which first folds the
    counters' rows added since the last fold."""

    def collect(self) -> Iterable[Metric]:
        # Collected into a list first so the transaction ends before exposition starts.
        with unit_of_work() as session:
            counters.fold(session.connection())
            return [*_sagas(session), _compensations(session), _step_durations(session),
                    *_outbox(session)]


NO_STORE = [("Cache-Control", "no-store")]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(token: str) -> WSGIApp:
    """A WSGI app serving the metrics to `Authorization: Bearer <token>`, mounted at
    `/metrics` beside the API; with an empty token, to nobody."""
    # Its own registry: none of the process-local default metrics, which differ per worker.
    # auto_describe stays off, so registering does not query the database. A database
    # error propagates: the scrape fails and Prometheus marks the target down.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PetstoreCollector())
    metrics = make_wsgi_app(registry)

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not token:
            return error_response(start_response, 403,
                                  "Metrics are closed: set PETSTORE_METRICS_TOKEN to read "
                                  "metrics with `Authorization: Bearer <token>`", NO_STORE)
        if not _bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token):
            return error_response(start_response, 401,
                                  "Send `Authorization: Bearer <PETSTORE_METRICS_TOKEN>`",
                                  [*NO_STORE, ("WWW-Authenticate", 'Bearer realm="metrics"')])
        return metrics(environ, start_response)

    return guarded


def _bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    # WSGI headers are latin-1 strings; bytes compare in constant time whatever they hold.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("latin-1", "replace"), token.encode())
