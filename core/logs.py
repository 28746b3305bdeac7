"""Structured logs, and the correlation ids that follow one order everywhere.

Why structlog: its `ProcessorFormatter` sits on the standard `logging` handler, so
every line — Concord's `logging.getLogger(__name__)` calls, Django's, Celery's,
gunicorn's — is rendered the same way (JSON in production, readable key=value in
`make run`), and its contextvars support merges the ids bound for the current
request or task into each of those lines. No call site needs to pass them.

The ids (CORRELATION_KEYS) are bound where they become known:

- the request middleware: `request_id` (the caller's `X-Request-Id`, or a new one);
- the API: `idempotency_key`, `client_id`, `order_id`;
- Celery: the publish hook copies the bound ids into the task's headers
  (`concord_context`), the worker binds them again before the task runs, so an
  advance task poked by an API request logs that request's `request_id`;
- the saga executor: `saga_run_id`, `saga_type` and the run's subject under the
  name its definition gives it (`order_id` for the order sagas);
- the provider client: `provider_attempt_id` (sent to the provider as
  `X-Request-Id` and stored on the ProviderAttempt row);
- the provider webhook: `webhook_event_id` and the `order_id` of its charge.

Request and task scopes are cleared at their start and end (middleware, task
signals); code that binds ids for a shorter stretch uses `scope()`.

Where the ids live: one ContextVar holding a mapping that is replaced, never changed
in place (so a copied context — a thread, an asyncio task — never sees another's
bindings). structlog's own contextvars keep one ContextVar per key, and each of its
bind/clear/get/merge calls walks every ContextVar of the context (Django's and
asgiref's included, about 65 in a request): with a clear, a scope and two log lines
per accepted order that walk was ≈ 5 % of the order's CPU (bench/api_cpu.py, issue
16). `_merge_bound` is the processor that adds the ids to every line, as structlog's
merge_contextvars did (a key the line sets itself wins).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import structlog

CORRELATION_KEYS = (
    "request_id",
    "idempotency_key",
    "client_id",
    "order_id",
    "saga_run_id",
    "saga_type",
    "provider_attempt_id",
    "webhook_event_id",
)
# The Celery message header that carries the ids from publisher to worker.
TASK_HEADER = "concord_context"
# Publish time (Unix seconds) in every task message: the broker's oldest-message age.
SENT_AT_HEADER = "concord_sent_at"
REQUEST_ID_HEADER = "X-Request-Id"
_MAX_ID_LENGTH = 128


# --- binding ---------------------------------------------------------------------

_NOTHING: Mapping[str, Any] = MappingProxyType({})
# The ids bound now. Each change sets a new mapping; a set mapping is never mutated.
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "concord_log_ids", default=_NOTHING
)


def bind(**ids: Any) -> None:
    """Bind correlation ids (None or "" values are skipped) for the rest of the
    current request, task or scope()."""
    values = {name: value for name, value in ids.items() if value is not None and value != ""}
    if values:
        _bound.set({**_bound.get(), **values})


def clear() -> None:
    _bound.set(_NOTHING)


def bound() -> dict[str, Any]:
    """Every id bound now (a copy): what the next log line carries."""
    return dict(_bound.get())


# The ids that say who started something (kept on a saga run: SagaRun.origin), as
# opposed to the ids of the work itself (run, attempt, order).
ORIGIN_KEYS = ("request_id", "idempotency_key", "client_id", "webhook_event_id")


def origin() -> dict[str, Any] | None:
    """The ORIGIN_KEYS bound now, or None when there are none."""
    now = _bound.get()
    ids = {name: now[name] for name in ORIGIN_KEYS if now.get(name) not in (None, "")}
    return ids or None


def bind_missing(ids: dict[str, Any] | None) -> None:
    """Bind those of `ids` (CORRELATION_KEYS only) that nothing has bound yet: a
    request's or task's own ids win over stored ones."""
    if not ids:
        return
    now = _bound.get()
    bind(**{name: value for name, value in ids.items() if name in CORRELATION_KEYS and name not in now})


def correlation() -> dict[str, Any]:
    """The correlation ids bound now (what a task message carries)."""
    return {name: value for name, value in _bound.get().items() if name in CORRELATION_KEYS}


@contextlib.contextmanager
def scope(**ids: Any) -> Iterator[None]:
    """Bind ids for a block; afterwards the context is exactly what it was, including
    ids bound inside the block with bind()."""
    saved = _bound.get()
    bind(**ids)
    try:
        yield
    finally:
        _bound.set(saved)


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """No ids for a block (then exactly the ones before): for publishing a task that
    serves many requests at once (the outbox relay, the senders), which must not log
    as if it were about the request whose commit happened to poke it."""
    saved = _bound.get()
    _bound.set(_NOTHING)
    try:
        yield
    finally:
        _bound.set(saved)


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def clean_request_id(value: str | None) -> str:
    """A caller's X-Request-Id if it is short printable ASCII without spaces, else a
    new one: an id lands in every log line, so it must not be able to forge lines."""
    if (
        value
        and len(value) <= _MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and " " not in value
    ):
        return value
    return new_id()


# --- Celery: carry the ids in task headers ------------------------------------------


def task_headers_add(headers: dict | None) -> None:
    """before_task_publish: the bound ids and the publish time go into the message."""
    if headers is None:
        return
    ids = correlation()
    if ids:
        headers[TASK_HEADER] = ids
    headers.setdefault(SENT_AT_HEADER, time.time())


def task_context_bind(task: Any, task_id: str | None) -> None:
    """task_prerun: a fresh context with the publisher's ids and the task's own."""
    clear()
    carried = getattr(getattr(task, "request", None), TASK_HEADER, None)
    if isinstance(carried, dict):
        bind(**{name: value for name, value in carried.items() if name in CORRELATION_KEYS})
    bind(task_id=task_id, task=getattr(task, "name", None))
    queued = task_queued_seconds(task)
    if queued is not None:
        # Publish -> start (broker hop, worker wake-up, pool hand-off) on every line
        # the task logs, so a slow step and a slow delivery are told apart.
        bind(task_queued_ms=round(queued * 1000, 1), task_sent_at=getattr(task.request, SENT_AT_HEADER))


def task_queued_seconds(task: Any) -> float | None:
    """Seconds from the publish (SENT_AT_HEADER, the publisher's clock) to now, or
    None when the message carries no publish time."""
    sent_at = getattr(getattr(task, "request", None), SENT_AT_HEADER, None)
    if not isinstance(sent_at, int | float):
        return None
    return max(0.0, time.time() - float(sent_at))


# --- formatting --------------------------------------------------------------------


def _merge_bound(logger: Any, method: str, event: dict) -> dict:
    """The bound ids on the line (structlog's merge_contextvars for `_bound`)."""
    for name, value in _bound.get().items():
        event.setdefault(name, value)
    return event


def _add_trace_ids(logger: Any, method: str, event: dict) -> dict:
    """trace_id / span_id of the current OpenTelemetry span, when tracing is on."""
    from core import tracing

    ids = tracing.current_ids()
    if ids:
        event.update(ids)
    return event


def _pre_chain() -> list:
    return [
        _merge_bound,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _add_trace_ids,
    ]


def _formatter(renderer: Any, *, dict_traceback: bool) -> dict:
    processors: list = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if dict_traceback:
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": processors,
        "foreign_pre_chain": _pre_chain(),
    }


def logging_config(*, fmt: str, level: str) -> dict:
    """The LOGGING dict: `fmt` "json" (one JSON object per line, for a log search)
    or "console" (readable, for `make run` and tests)."""
    if fmt not in ("json", "console"):
        raise ValueError(f"LOG_FORMAT must be json or console, not {fmt!r}")
    renderer = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, pad_event_to=0, exception_formatter=structlog.dev.plain_traceback
        )
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"concord": _formatter(renderer, dict_traceback=fmt == "json")},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "concord"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # One line per HTTP call is the provider client's own (with its attempt id).
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            # Gunicorn's own handlers would print a second, unformatted copy.
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": True},
        },
    }


def celery_logging_setup(loglevel: Any = None, **_: Any) -> None:
    """Celery's setup_logging signal: keep Django's LOGGING (already applied by
    django.setup()) instead of Celery's own handlers; honour --loglevel."""
    if loglevel:
        logging.getLogger().setLevel(loglevel)
