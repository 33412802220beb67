"""GET /metrics: saga and outbox metrics computed from PostgreSQL at scrape time."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, select

from models import counters
from models.counters import STEP_BUCKETS, saga_counts
from models.db import unit_of_work, utcnow
from models.outbox import OutboxMessage
from models.saga import SAGA_STATUSES, Saga, SagaStep
from sagas import engine, registry
from sagas.definition import Refusal, SagaDefinition, Step
from sagas.machine import Delivery

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Seconds taken by the seeded attempts that answered: the histogram's input.
ACTION_DURATIONS = (0.003, 0.2, 0.2, 3.0, 20.0)
UNDO_DURATIONS = (0.02, 0.04)


@dataclass(frozen=True)
class Seeded:
    kind: str
    act: str  # the action task's name
    undo: str  # the compensation task's name


TOKEN = uuid.uuid4().hex


@pytest.fixture(scope="module")
def metrics_app(app) -> Flask:
    """The gateway with metrics open to TOKEN (the test session configures none)."""
    from web import create_app

    return create_app({"TESTING": True, "METRICS_TOKEN": TOKEN})


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    """Sagas, step attempts and outbox rows of a kind no other test uses; removed after."""
    tag = uuid.uuid4().hex[:10]
    data = Seeded(kind=f"test_kind_{tag}", act=f"test_{tag}.act", undo=f"test_{tag}.undo")
    outbox_ids = _seed(data)
    try:
        yield data
    finally:
        with unit_of_work() as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(outbox_ids)))
            session.execute(delete(SagaStep).where(SagaStep.task_name.in_((data.act, data.undo))))
            session.execute(delete(Saga).where(Saga.kind == data.kind))


def _seed(data: Seeded) -> list[int]:
    now = utcnow()
    # No deadline: a sweeper running elsewhere must never pick these sagas up.
    sagas = {status: [Saga(id=uuid.uuid4(), kind=data.kind, status=status, payload={},
                           deadline_at=None, ended_at=None if status == "running" else now)
                      for _ in range(count)]
             for status, count in (("completed", 2), ("compensated", 1), ("refused", 1),
                                   ("failed", 1), ("running", 1))}
    completed, compensated, failed = (sagas["completed"][0], sagas["compensated"][0],
                                      sagas["failed"][0])

    def attempt(saga: Saga, task: str, phase: str, status: str, seconds: float | None,
                index: int = 0) -> SagaStep:
        # A step's outcome is recorded once per saga: each answered one is its own step.
        return SagaStep(saga_id=saga.id, step=f"s{index}", step_index=index, phase=phase,
                        attempt=1,
                        status=status, task_name=task, started_at=now,
                        ended_at=None if seconds is None else now + timedelta(seconds=seconds))

    statuses = ("succeeded", "succeeded", "failed", "refused", "succeeded")
    steps = [attempt(completed, data.act, "action", status, seconds, index)
             for index, (status, seconds) in enumerate(zip(statuses, ACTION_DURATIONS,
                                                           strict=True))]
    steps += [
        # Neither is an answered attempt, so neither is in the histogram.
        attempt(completed, data.act, "action", "lost", 1.0),
        attempt(sagas["running"][0], data.act, "action", "running", None),
        attempt(compensated, data.undo, "compensation", "succeeded", UNDO_DURATIONS[0]),
        attempt(failed, data.undo, "compensation", "succeeded", UNDO_DURATIONS[1]),
        attempt(failed, data.undo, "compensation", "lost", 30.0),
    ]
    outbox = [
        OutboxMessage(kind="event", name=f"TEST_{data.kind}", payload={},
                      created_at=now - timedelta(hours=1)),
        OutboxMessage(kind="event", name=f"TEST_{data.kind}", payload={}, created_at=now),
        OutboxMessage(kind="event", name=f"TEST_{data.kind}", payload={}, created_at=now,
                      sent_at=now),
    ]
    with unit_of_work() as session:
        session.add_all([saga for group in sagas.values() for saga in group])
        session.flush()
        session.add_all([*steps, *outbox])
        session.flush()
        return [message.id for message in outbox]


def scrape(app: Flask) -> tuple[str, Samples]:
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.get_data(as_text=True)
    samples = {(sample.name, frozenset(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_sagas_by_kind_and_status(metrics_app, seeded):
    _, samples = scrape(metrics_app)
    expected = {"running": 1, "completed": 2, "compensating": 0, "compensated": 1,
                "refused": 1, "failed": 1}
    for status, count in expected.items():
        assert value(samples, "petstore_sagas", kind=seeded.kind, status=status) == count
    assert value(samples, "petstore_sagas_started_total", kind=seeded.kind) == 6
    for status, count in (("completed", 2), ("compensated", 1), ("refused", 1), ("failed", 1)):
        assert value(samples, "petstore_sagas_ended_total", kind=seeded.kind,
                     status=status) == count


def test_successful_compensations_by_kind_and_task(metrics_app, seeded):
    _, samples = scrape(metrics_app)
    assert value(samples, "petstore_saga_compensations_total", kind=seeded.kind,
                 task_name=seeded.undo) == 2
    assert not any(name == "petstore_saga_compensations_total"
                   and ("task_name", seeded.act) in labels for name, labels in samples)


def test_step_durations_are_a_consistent_histogram(metrics_app, seeded):
    _, samples = scrape(metrics_app)
    name = "petstore_saga_step_duration_seconds"
    buckets = {dict(labels)["le"]: count for (sample, labels), count in samples.items()
               if sample == f"{name}_bucket" and ("task_name", seeded.act) in labels}
    bounds = sorted(buckets, key=float)  # float("+Inf") sorts last
    assert bounds[-1] == "+Inf" and len(bounds) == len(STEP_BUCKETS) + 1
    cumulative = [buckets[bound] for bound in bounds]
    assert cumulative == sorted(cumulative)
    count = value(samples, f"{name}_count", task_name=seeded.act)
    assert buckets["+Inf"] == count == len(ACTION_DURATIONS)
    assert value(samples, f"{name}_sum", task_name=seeded.act) == pytest.approx(
        sum(ACTION_DURATIONS))
    for bound in bounds[:-1]:
        assert buckets[bound] == sum(d <= float(bound) for d in ACTION_DURATIONS), bound
    assert value(samples, f"{name}_count", task_name=seeded.undo) == len(UNDO_DURATIONS)
    assert value(samples, f"{name}_sum", task_name=seeded.undo) == pytest.approx(
        sum(UNDO_DURATIONS))


def test_outbox_backlog_and_age(metrics_app, seeded):
    _, samples = scrape(metrics_app)
    assert value(samples, "petstore_outbox_backlog") >= 2
    assert value(samples, "petstore_outbox_oldest_unsent_seconds") >= 3600


def test_metrics_stay_out_of_the_openapi_document(metrics_app):
    paths = metrics_app.test_client().get("/v2/openapi.json").json["paths"]
    assert not any(path.endswith("/metrics") for path in paths)


class Declined(Refusal):
    """The test saga's second step refuses."""


def test_a_fold_keeps_every_sum_in_one_row_per_key(metrics_app, seeded):
    def rows() -> list[tuple[str, int]]:
        with unit_of_work() as session:
            return session.execute(select(saga_counts.c.status, saga_counts.c.n)
                                   .where(saga_counts.c.kind == seeded.kind)).all()

    before, added = scrape(metrics_app)[1], rows()  # the scrape folded what was there
    with unit_of_work() as session:  # each saga moving adds its two rows
        session.execute(Saga.__table__.update().where(
            Saga.kind == seeded.kind, Saga.status == "running").values(status="failed"))
    assert len(rows()) == len(added) + 2
    with unit_of_work() as session:
        assert counters.fold(session.connection())
    folded = dict(rows())
    assert len(folded) == len(rows()) and folded["running"] == 0 and folded["failed"] == 2
    after = scrape(metrics_app)[1]
    assert value(after, "petstore_sagas", kind=seeded.kind, status="failed") == 2
    assert value(after, "petstore_sagas_started_total", kind=seeded.kind) == value(
        before, "petstore_sagas_started_total", kind=seeded.kind)


def test_a_fold_gives_way_to_one_already_folding(metrics_app, seeded):
    with unit_of_work() as folding, unit_of_work() as session:
        folding.execute(select(func.pg_advisory_xact_lock(counters.FOLDING)))
        assert not counters.fold(session.connection())
        # A scrape meanwhile sums the rows as they are.
        assert value(scrape(metrics_app)[1], "petstore_sagas", kind=seeded.kind,
                     status="completed") == 2


def test_the_counters_follow_a_saga_through_the_engine(metrics_app, monkeypatch):
    kind = f"test_counted_{uuid.uuid4().hex[:8]}"
    book, pay, cancel = f"{kind}.book", f"{kind}.pay", f"{kind}.cancel"
    definition = SagaDefinition(kind, (Step("book", action=book, compensation=cancel),
                                       Step("pay", action=pay)))
    monkeypatch.setitem(registry.DEFINITIONS, kind, definition)
    with unit_of_work() as session:
        saga_id = str(engine.start(session, definition, {}).id)

    def deliver(task: str, step: str, phase: str, work) -> None:
        engine.run_step(task, work, Delivery(saga_id, step, phase, started_at=utcnow()))

    try:
        _, samples = scrape(metrics_app)
        assert value(samples, "petstore_sagas", kind=kind, status="running") == 1
        assert value(samples, "petstore_sagas_started_total", kind=kind) == 1
        deliver(book, "book", "action", lambda session, data: {"room": 12})
        with pytest.raises(engine.StepRefused):
            deliver(pay, "pay", "action", lambda session, data: (_ for _ in ()).throw(
                Declined("card declined")))
        deliver(cancel, "book", "compensation", lambda session, data: None)
        _, samples = scrape(metrics_app)
        assert {status: value(samples, "petstore_sagas", kind=kind, status=status)
                for status in SAGA_STATUSES} == {status: int(status == "compensated")
                                                 for status in SAGA_STATUSES}
        assert value(samples, "petstore_sagas_ended_total", kind=kind,
                     status="compensated") == 1
        assert value(samples, "petstore_saga_compensations_total", kind=kind,
                     task_name=cancel) == 1
        for task in (book, pay, cancel):  # each answered once: succeeded, refused, succeeded
            assert value(samples, "petstore_saga_step_duration_seconds_count",
                         task_name=task) == 1
    finally:
        with unit_of_work() as session:
            session.execute(delete(OutboxMessage).where(
                OutboxMessage.payload["saga_id"].astext == saga_id))
            session.execute(delete(Saga).where(Saga.id == uuid.UUID(saga_id)))
