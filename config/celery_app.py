"""Celery application; every setting comes from Django settings' CELERY_* names.

The signal handlers below carry the log correlation ids in task headers, count
tasks for /metrics, record the worker's heartbeat (core/heartbeats.py), keep database
connections between tasks as Django keeps them between requests (CONN_MAX_AGE, health
checks; see CELERY_DB_REUSE_MAX in config/settings/base.py), keep Django's
logging configuration, and start tracing and the worker's own metrics endpoint when
configured (docs/operations.md).

Without DJANGO_SETTINGS_MODULE it loads production settings (fail closed, as wsgi.py).
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _keep_django_logging(loglevel=None, **kwargs):
    from core.logs import celery_logging_setup

    celery_logging_setup(loglevel=loglevel)


@signals.before_task_publish.connect
def _carry_correlation(headers=None, **kwargs):
    from core.logs import task_headers_add

    task_headers_add(headers)


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs):
    from django.db import close_old_connections

    from core import heartbeats, logs, metrics

    if not _eager(task):
        # As before a request: drop a connection past CONN_MAX_AGE or left unusable (the
        # fixup closes only every CELERY_DB_REUSE_MAX tasks, see config/settings/base.py).
        close_old_connections()
    logs.task_context_bind(task, task_id)
    metrics.celery_task_started(task_id, getattr(task, "name", "unknown"), logs.task_queued_seconds(task))
    delivery = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    heartbeats.heartbeat_record(heartbeats.kind_of_queue(delivery.get("routing_key")))


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs):
    from django.db import close_old_connections

    from core import logs, metrics

    metrics.celery_task_finished(task_id, getattr(task, "name", "unknown"), state)
    logs.clear()
    if not _eager(task):
        # As after a request (Django's request_finished does the same).
        close_old_connections()


def _eager(task) -> bool:
    # An eager task runs inside its caller (a test's transaction): its connection is not ours.
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


@signals.worker_init.connect
def _worker_started(**kwargs):
    from django.conf import settings

    from core import tracing

    tracing.setup(service_name="concord-worker")
    if settings.WORKER_METRICS_PORT:
        from core.metrics import serve_process_metrics

        serve_process_metrics(port=settings.WORKER_METRICS_PORT, addr=settings.WORKER_METRICS_ADDR)
