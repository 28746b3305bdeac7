"""Concord's Prometheus metrics: every family in one place, and the small calls the
apps make (`metrics.order_accepted(...)`), so a hook is one line wherever the code
moves.

Why prometheus-client (and not django-prometheus): it is the reference client, its
multiprocess mode is what gunicorn's worker processes and Celery's prefork children
need (each process writes its samples to files in PROMETHEUS_MULTIPROC_DIR, the
/metrics view merges them), and the families below are Concord's own — labelled by
route template, saga step, provider operation — which django-prometheus's generic
per-view and per-model metrics would not give us.

Set PROMETHEUS_MULTIPROC_DIR (an empty directory per host, wiped at start) before the
first import of this module in every process (`make run` sets var/prometheus; the
test suite a temporary directory). Without it each process counts in memory alone,
which is right only for a single process.

Gauges that describe the state of the database or the broker (incidents open, money
at risk, queue depth, ...) are not here: they are computed when /metrics is scraped
(monitoring/collectors.py), from the source tables, so every process reports the
same truth.

Counters here count effects that committed: callers inside a transaction use
`on_commit(...)`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector

# *_created series double the output and nothing here alerts on them.
disable_created_metrics()

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- HTTP -----------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "concord_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "concord_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY,
)

# --- orders ---------------------------------------------------------------------------

ORDERS_ACCEPTED = Counter(
    "concord_orders_accepted", "Orders accepted (201, committed), by currency.", ["currency"]
)
ORDERS_CONFIRMED = Counter("concord_orders_confirmed", "Orders confirmed.")
ORDERS_CANCELLED = Counter("concord_orders_cancelled", "Orders cancelled, by failure reason.", ["reason"])
ORDER_CONFIRMATION = Histogram(
    "concord_order_confirmation_seconds",
    "Time from an order's acceptance to its confirmation (SLO: p99 under SLO_ORDER_CONFIRM_SECONDS).",
    buckets=(0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900, 1800, 3600),
)

# --- sagas ----------------------------------------------------------------------------

SAGA_STEP_DURATION = Histogram(
    "concord_saga_step_duration_seconds",
    "Duration of one saga step attempt, by saga, step, direction and outcome.",
    ["saga", "step", "direction", "outcome"],
    buckets=_LATENCY,
)
SAGA_STEP_RETRIES = Counter(
    "concord_saga_step_retries",
    "Saga step attempts that failed transiently (retried until the step's attempts run out), by saga, "
    "step and error class (retry = transient answer, timeout, error = exception, "
    "lease_expired = worker lost mid-step).",
    ["saga", "step", "error_class"],
)
SAGA_RUNS_FINISHED = Counter(
    "concord_saga_runs_finished",
    "Saga runs that came to rest, by saga and status (completed, compensated, failed, ...).",
    ["saga", "status"],
)
SAGA_LEASES_LOST = Counter(
    "concord_saga_leases_lost",
    "Passes that found their lease taken over and discarded their step's result.",
    ["saga"],
)

# --- payment provider -----------------------------------------------------------------

PROVIDER_CALLS = Counter(
    "concord_provider_calls",
    "Calls to the payment provider, by operation and outcome "
    "(succeeded, declined, transient, unknown; reads: ok, unavailable, error).",
    ["operation", "outcome"],
)
PROVIDER_DURATION = Histogram(
    "concord_provider_call_duration_seconds",
    "Latency of one call to the payment provider, by operation and outcome.",
    ["operation", "outcome"],
    buckets=_LATENCY,
)
WEBHOOK_EVENTS = Counter(
    "concord_provider_webhook_events",
    "Provider webhook deliveries, by outcome (applied, duplicate, ignored, rejected, no_payment, "
    "invalid_signature, stale_signature, invalid_event).",
    ["outcome"],
)

# --- idempotency ----------------------------------------------------------------------

IDEMPOTENCY_REQUESTS = Counter(
    "concord_idempotency_requests",
    "Requests with an Idempotency-Key, by result: first (ran, response stored), replayed, "
    "not_stored (ran, response not storable), key_reused (422), key_in_use (409), "
    "key_required / key_invalid (400).",
    ["result"],
)

# --- reconciliation -------------------------------------------------------------------

RECONCILIATION_PASS = Histogram(
    "concord_reconciliation_pass_duration_seconds",
    "Duration of one reconciliation pass, by final status.",
    ["status"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
INCIDENTS_OPENED = Counter(
    "concord_incidents_opened", "Incidents opened by reconciliation, by type.", ["type"]
)
INCIDENTS_AUTO_RESOLVED = Counter(
    "concord_incidents_auto_resolved",
    "Incidents resolved by a re-check that no longer found the condition, by type.",
    ["type"],
)

# --- Celery ---------------------------------------------------------------------------

CELERY_TASKS = Counter(
    "concord_celery_tasks",
    "Celery tasks run by the workers, by task name and state (success, failure, retry).",
    ["task", "state"],
)
CELERY_TASK_QUEUED = Histogram(
    "concord_celery_task_queued_seconds",
    "Publish to start of one Celery task (broker hop, worker wake-up, waiting for a free "
    "slot), by task name. Publisher and worker clocks must agree.",
    ["task"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
CELERY_TASK_DURATION = Histogram(
    "concord_celery_task_duration_seconds",
    "Run time of one Celery task, by task name.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# (Outbox relay and webhook-delivery lag go here when the outbox lands — issue 11.)


# --- the calls the apps make ------------------------------------------------------------


def on_commit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Record only if the caller's transaction commits (at once outside one). Robust:
    an observation that fails is logged and never fails the request or the step
    whose effect has committed."""
    transaction.on_commit(functools.partial(fn, *args, **kwargs), robust=True)


def http_request(*, method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


# The children of the per-request counters, by label value. labels() takes a lock and
# checks its arguments on every call; the accepted order's counters are on the hot
# path (issue 16), and their label values are few (currencies, idempotency results).
_accepted_by_currency: dict[str, Any] = {}
_idempotency_by_result: dict[str, Any] = {}


def order_accepted(*, currency: str) -> None:
    child = _accepted_by_currency.get(currency)
    if child is None:
        child = _accepted_by_currency.setdefault(currency, ORDERS_ACCEPTED.labels(currency))
    child.inc()


def order_confirmed(*, seconds_since_accepted: float) -> None:
    ORDERS_CONFIRMED.inc()
    ORDER_CONFIRMATION.observe(max(0.0, seconds_since_accepted))


def order_cancelled(*, reason: str) -> None:
    ORDERS_CANCELLED.labels(reason or "unknown").inc()


def saga_step_attempt(
    *, saga: str, step: str, direction: str, outcome: str, seconds: float, retried: bool
) -> None:
    SAGA_STEP_DURATION.labels(saga, step, direction, outcome).observe(seconds)
    if retried:
        SAGA_STEP_RETRIES.labels(saga, step, outcome).inc()


def saga_run_finished(*, saga: str, status: str) -> None:
    SAGA_RUNS_FINISHED.labels(saga, status).inc()


def saga_type_known(*, saga: str) -> None:
    """A registered saga type: its lost-lease series exist from the start (at 0), so
    "no lease was lost" is a value on /metrics, not a missing series."""
    SAGA_LEASES_LOST.labels(saga)


def saga_lease_lost(*, saga: str) -> None:
    SAGA_LEASES_LOST.labels(saga or "unknown").inc()


def provider_call(*, operation: str, outcome: str, seconds: float) -> None:
    PROVIDER_CALLS.labels(operation, outcome).inc()
    PROVIDER_DURATION.labels(operation, outcome).observe(seconds)


def webhook_event(*, outcome: str) -> None:
    WEBHOOK_EVENTS.labels(outcome).inc()


def idempotency_request(*, result: str) -> None:
    child = _idempotency_by_result.get(result)
    if child is None:
        child = _idempotency_by_result.setdefault(result, IDEMPOTENCY_REQUESTS.labels(result))
    child.inc()


def reconciliation_pass(*, status: str, seconds: float) -> None:
    RECONCILIATION_PASS.labels(status).observe(seconds)


def incidents_reported(*, incident_type: str, opened: int, auto_resolved: int) -> None:
    if opened:
        INCIDENTS_OPENED.labels(incident_type).inc(opened)
    if auto_resolved:
        INCIDENTS_AUTO_RESOLVED.labels(incident_type).inc(auto_resolved)


# Celery: prerun and postrun arrive in the same process, one task at a time per
# thread; start times are kept by task id until the postrun.
_task_started: dict[str, float] = {}


def celery_task_started(task_id: str | None, task_name: str = "unknown", queued: float | None = None) -> None:
    if task_id:
        _task_started[task_id] = time.monotonic()
    if queued is not None:
        CELERY_TASK_QUEUED.labels(task_name).observe(queued)


def celery_task_finished(task_id: str | None, task_name: str, state: str | None) -> None:
    started = _task_started.pop(task_id, None) if task_id else None
    CELERY_TASKS.labels(task_name, (state or "unknown").lower()).inc()
    if started is not None:
        CELERY_TASK_DURATION.labels(task_name).observe(time.monotonic() - started)


# --- exposition -------------------------------------------------------------------------


class _ThisProcess:
    """The default registry's families (single-process mode)."""

    def collect(self):
        yield from REGISTRY.collect()


def multiprocess_dir() -> str | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


def process_registry() -> CollectorRegistry:
    """The families above: with PROMETHEUS_MULTIPROC_DIR, merged from every process of
    this host (gunicorn workers, Celery workers and their prefork children); without
    it, this process's own."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ThisProcess())
    return registry


def serve_process_metrics(*, port: int, addr: str) -> None:
    """A worker-only host: its processes' families on http://addr:port/ (a daemon
    thread of the worker's main process). It has no token: bind it to an internal
    address (docs/deployment.md)."""
    start_http_server(port, addr=addr, registry=process_registry())
