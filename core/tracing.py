"""OpenTelemetry tracing: optional, off unless OTEL_ENABLED=true.

When on, the OpenTelemetry instrumentations (not hand-made spans) trace one checkout
end to end: Django (the API request), Celery (a task's publish and its run in the
worker, linked through the message headers), psycopg (every SQL statement) and httpx
(the provider calls). One span is Concord's own: a saga run started by the coalesced
`sagas.start_fresh` (one task for a burst of requests) runs its pass in a
"saga pass <type>" span in the trace of the request that started it — the run keeps
that request's `traceparent` (`SagaRun.origin`, `carrier()`), and the span links to
the task's (`continued()`). Log lines then carry `trace_id` and
`span_id` (core/logs.py), so a log search and a trace viewer point at each other.

Exporters: OTLP over HTTP (the default; endpoint from the standard
OTEL_EXPORTER_OTLP_ENDPOINT, e.g. a local collector or Jaeger), or with
OTEL_TRACES_FILE set, one JSON span per line appended to that file (demos, tests).
See docs/operations.md ("Tracing") for one checkout as a trace.

`setup()` is called once per process before the first request or task: from
config/wsgi.py (web) and from the worker_init signal (config/celery_app.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_enabled = False


def enabled() -> bool:
    return _enabled


def setup(*, service_name: str) -> bool:
    """Install the tracer provider and the instrumentations if OTEL_ENABLED; True if on.
    Safe to call more than once."""
    global _enabled
    from django.conf import settings

    if not getattr(settings, "OTEL_ENABLED", False):
        return False
    with _lock:
        if _enabled:
            return True
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        path = getattr(settings, "OTEL_TRACES_FILE", "")
        if path:
            provider.add_span_processor(SimpleSpanProcessor(_file_exporter(path)))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        DjangoInstrumentor().instrument()
        CeleryInstrumentor().instrument()
        PsycopgInstrumentor().instrument()
        HTTPXClientInstrumentor().instrument()
        _enabled = True
        return True


def _file_exporter(path: str):
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    # Line-buffered append: several processes may write to one file, a line at a time.
    out = open(path, "a", buffering=1)  # lives as long as the process

    def one_line(span: Any) -> str:
        return json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n"

    return ConsoleSpanExporter(out=out, formatter=one_line)


def current_ids() -> dict[str, str]:
    """trace_id / span_id of the span active now ({} when tracing is off or none is)."""
    if not _enabled:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def carrier() -> dict[str, str]:
    """The active trace context as W3C headers (`traceparent`), to be stored with work
    that a later, batched task picks up ({} when tracing is off or no span is active)."""
    if not _enabled:
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return {name: value for name, value in headers.items() if name in ("traceparent", "tracestate")}


@contextlib.contextmanager
def continued(stored: dict[str, Any] | None, *, name: str) -> Iterator[None]:
    """A span `name` in the trace `stored` (a carrier()) names, linked to the span
    active now: work that one task does for many requests (a burst's saga runs started
    by one sagas.start_fresh) still shows in the trace of the request behind each
    piece. Nothing when tracing is off, nothing was stored, or the active span is
    already in that trace (a per-run poke carries the trace in its headers)."""
    if not _enabled or not stored or "traceparent" not in stored:
        yield
        return
    from opentelemetry import propagate, trace

    parent = propagate.extract({k: str(v) for k, v in stored.items()})
    origin = trace.get_current_span(parent).get_span_context()
    here = trace.get_current_span().get_span_context()
    if not origin.is_valid or (here.is_valid and here.trace_id == origin.trace_id):
        yield
        return
    links = [trace.Link(here)] if here.is_valid else []
    with trace.get_tracer(__name__).start_as_current_span(name, context=parent, links=links):
        yield
