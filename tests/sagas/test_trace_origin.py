"""A saga run keeps the trace of the request that started it (SagaRun.origin), so a pass
run by a task that serves a whole burst (sagas.start_fresh, or an advance it published)
still shows in that request's trace, linked to the task's own span (core.tracing).

The tracer provider is process-global and can be set once, so the check runs in a
child Python process with an in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys

from monitoring.simulate.stack import ROOT

SCRIPT = r"""
import json
import django
django.setup()
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import tracing

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("test")
tracing._enabled = True  # what setup() sets once the provider is installed

with tracer.start_as_current_span("request B"):
    stored = tracing.carrier()
with tracer.start_as_current_span("request A"):  # the burst's task carries A's trace
    with tracer.start_as_current_span("task"):
        with tracing.continued(stored, name="saga pass checkout"):
            with tracer.start_as_current_span("provider call"):
                pass
        with tracing.continued(None, name="no origin"):
            pass
    with tracing.continued(tracing.carrier(), name="same trace"):
        pass
print(json.dumps({"stored": stored, "spans": [
    {"name": s.name, "trace": s.context.trace_id, "span": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None,
     "links": [link.context.span_id for link in s.links]}
    for s in exporter.get_finished_spans()]}))
"""


def test_a_pass_run_by_another_requests_task_is_in_its_own_requests_trace():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    spans = {span["name"]: span for span in out["spans"]}

    assert set(out["stored"]) == {"traceparent"}
    saga_pass, call = spans["saga pass checkout"], spans["provider call"]
    # in request B's trace, under B's span, linked to the task (in A's trace) that ran it
    assert saga_pass["trace"] == spans["request B"]["trace"] != spans["task"]["trace"]
    assert saga_pass["parent"] == spans["request B"]["span"]
    assert saga_pass["links"] == [spans["task"]["span"]]
    # what the pass does is inside it
    assert call["trace"] == saga_pass["trace"] and call["parent"] == saga_pass["span"]
    # nothing stored, or already in that trace: no extra span
    assert "no origin" not in spans and "same trace" not in spans
