"""Traces, with the usual OpenTelemetry environment: one trace per saga, across processes.

Off, and free, unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_TRACES_EXPORTER`) is set;
then each process (`setup`) exports its spans as OpenTelemetry's SDK reads its environment,
the API through the Flask instrumentation and every process's Celery tasks through the
Celery one.

A saga's trace id is its id: every span about a saga (its start in the API, each step's
publish, run and transition in the workers, whichever process or retry) is in that trace,
under one parent standing for the saga, so no header or data needs to carry it along.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

EXPORTERS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_TRACES_EXPORTER")
_on = False


def wanted(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the environment asks for traces (an exporter named, not `none`)."""
    return any(env.get(name, "none") not in ("", "none") for name in EXPORTERS)


def setup(service: str) -> bool:
    """Export this process's spans as the environment says, if it asks; True if it does.
    Call it once a process is what it will stay (after a worker's fork)."""
    global _on
    if _on or not wanted():
        return _on
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": service}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument()
    _on = True
    return True


def enabled() -> bool:
    return _on


def saga_context(saga_id: str | uuid.UUID) -> Any:
    """The context of a saga's trace: its id the trace's, its parent the saga itself."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    key = uuid.UUID(str(saga_id)).int
    parent = SpanContext(trace_id=key, span_id=(key & (2 ** 64 - 1)) or 1, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


@contextmanager
def in_saga(saga_id: str | uuid.UUID) -> Iterator[None]:
    """Spans started in the block (a task's publish, say) join the saga's trace."""
    if not _on:
        yield
        return
    from opentelemetry import context

    token = context.attach(saga_context(saga_id))
    try:
        yield
    finally:
        context.detach(token)


def saga_span(saga_id: str | uuid.UUID, name: str, **attributes: str) -> Any:
    """A span named `name` in the saga's trace, `saga.id` among its attributes, with a
    link to the span current where it starts (an HTTP request, a Celery task run)."""
    if not _on:
        return nullcontext()
    from opentelemetry import trace
    from opentelemetry.trace import Link

    current = trace.get_current_span().get_span_context()
    return trace.get_tracer("petstore.sagas").start_as_current_span(
        name, context=saga_context(saga_id), links=[Link(current)] if current.is_valid else (),
        attributes={"saga.id": str(saga_id), **attributes})
