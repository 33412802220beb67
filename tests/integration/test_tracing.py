"""Traces: with OpenTelemetry's usual environment set, every span about a saga, in the API
and in the workers, is in one trace, the saga's; unset, nothing is traced."""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common import tracing
from tests.support.system import settled
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess

STEPS = ("reserve_pet action", "place_order action", "count_reservation action")


def _provider() -> TracerProvider:
    """This process's tracer provider: OpenTelemetry lets a process set one, once."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
def api_spans(monkeypatch) -> Iterator[InMemorySpanExporter]:
    """The API process (this one) traced, into memory, as `tracing.setup` would."""
    exporter = InMemorySpanExporter()
    _provider().add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_on", True)
    CeleryInstrumentor().instrument()
    yield exporter
    CeleryInstrumentor().uninstrument()
    exporter.shutdown()  # takes no more spans


@pytest.fixture
def traced_worker(tmp_path) -> Iterator[WorkerProcess]:
    """A worker whose processes print their spans (OpenTelemetry's console exporter)."""
    worker = WorkerProcess(tmp_path / "worker.log", "traced", env={
        "OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}).start()
    yield worker
    worker.stop()


def printed_spans(worker: WorkerProcess) -> list[dict]:
    """The spans the console exporter printed: Celery logs a task process's prints, each
    span's JSON as one line's message (a Python literal, as the log format writes it)."""
    found = re.findall(r"logger=celery\.redirected .* msg=('\{\\n.*\}')$",
                       worker.log_path.read_text(errors="replace"), re.M)
    return [json.loads(ast.literal_eval(message)) for message in found]


def test_one_trace_per_saga_across_the_api_and_the_workers(
        client, owner, customer, api_spans, traced_worker):
    pet = client.post("/v2/pet", json={"name": f"rex-{uuid.uuid4().hex[:8]}",
                                       "photoUrls": []}, headers=owner).json
    answer = client.post("/v2/store/order", json={"petId": pet["id"]}, headers=customer)
    assert answer.status_code == 200, answer.json
    saga_id = answer.headers["Saga-Id"]
    eventually(lambda: settled(pets=[pet["id"]], sagas=[saga_id]))
    saga_trace = uuid.UUID(saga_id).int

    # In the API: the saga's start, and the publish of its first step, in the saga's trace.
    api = {span.name: span for span in api_spans.get_finished_spans()
           if span.context.trace_id == saga_trace}
    assert {"create_order started", "apply_async/pets.reserve_pet"} <= set(api)
    assert api["create_order started"].attributes["saga.id"] == saga_id

    # In the worker's processes: each step, its task's run and the next publish, in it too.
    def steps() -> dict[str, dict]:
        found = {span["name"]: span for span in printed_spans(traced_worker)
                 if span["context"]["trace_id"] == f"0x{saga_trace:032x}"}
        return found if set(STEPS) <= set(found) else {}

    worker = eventually(steps, timeout=15)
    for name in STEPS:
        step, phase = name.split()
        assert worker[name]["attributes"] == {
            "saga.id": saga_id, "saga.step": step, "saga.phase": phase}
    assert {"run/pets.reserve_pet", "run/orders.place_order",
            "run/inventory.reserve_stock"} <= set(worker)


def test_without_opentelemetrys_environment_nothing_is_traced(monkeypatch):
    for name in tracing.EXPORTERS:
        monkeypatch.delenv(name, raising=False)
    assert not tracing.wanted() and not tracing.setup("petstore-test")
    assert not tracing.enabled()
    with tracing.saga_span(uuid.uuid4(), "nothing"), tracing.in_saga(uuid.uuid4()):
        assert not trace.get_current_span().get_span_context().is_valid
