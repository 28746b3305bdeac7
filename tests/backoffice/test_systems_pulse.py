"""The overview's Systems box with a real worker and its embedded beat: it (and /metrics) says when a
worker last took a task and when beat last sent one, and that nothing does once the
worker is stopped; the same beat runs the SLA escalation, which e-mails through Django's
e-mail framework (file backend here) once."""

from __future__ import annotations

import html
import json
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backoffice.models import SlaEscalation
from core.heartbeats import BEAT, EVENTS, WORKER, heartbeat_age, heartbeat_forget
from monitoring.collectors import reset_cache
from reconciliation.models import Incident

from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _systems(client) -> dict[str, str]:
    page = html.unescape(client.get(reverse("backoffice:overview")).content.decode())
    box = page.split('aria-label="Worker, events worker, beat and provider"', 1)[1].split("</ul>", 1)[0]
    return {
        name: " ".join(box.split(f'data-pulse="{name}">', 1)[1].split("</li>", 1)[0].split())
        for name in ("worker", "events", "beat", "provider")
    }


@pytest.fixture
def fresh_heartbeats():
    heartbeat_forget()
    yield
    heartbeat_forget()


def test_the_overview_says_whether_a_worker_and_beat_run(
    support, make_incident, psp, settings, tmp_path, celery_worker_factory, fresh_heartbeats
):
    systems = _systems(support)
    assert "no worker has taken a task yet" in systems["worker"] and "not ok" in systems["worker"]
    assert "no events worker has taken a task yet" in systems["events"] and "not ok" in systems["events"]
    assert "beat has not sent a scheduled task yet" in systems["beat"]
    assert "the payment provider answers" in systems["provider"]

    # An incident nobody acknowledged for 61 minutes: past its escalation limit (on-call).
    incident_id = make_incident()
    Incident.objects.filter(pk=incident_id).update(detected_at=timezone.now() - timedelta(minutes=61))

    # The Procfile's split: the saga worker (with beat here) on the celery queue...
    mail_dir = tmp_path / "mail"
    worker = celery_worker_factory(
        beat=True,
        queues=["celery"],
        env={
            "PSP_BASE_URL": psp.base_url,
            "PSP_API_KEY": psp.api_key,
            "RECONCILE_INTERVAL": "3600",  # no pass re-checks the hand-made incident meanwhile
            "BACKOFFICE_SLA_ESCALATE_INTERVAL": "1",
            "BACKOFFICE_SLA": json.dumps(
                {"incident_unacknowledged": {"attention_after": 60, "escalate_after": 3600}}
            ),
            "BACKOFFICE_SLA_ONCALL_EMAILS": "oncall@shop.example",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(mail_dir),
        },
    )
    wait_for(
        lambda: heartbeat_age(WORKER) is not None and heartbeat_age(BEAT) is not None,
        what="the worker's and beat's heartbeats",
        on_timeout=worker.log,
    )
    # ... beat already sent the outbox relay to the events queue, which nobody consumes:
    # the saga worker's tasks do not pass for the events worker's.
    assert heartbeat_age(EVENTS) is None
    systems = _systems(support)
    assert "no events worker has taken a task yet" in systems["events"] and "not ok" in systems["events"]
    # ... and the events worker on the events and bulk queues.
    events = celery_worker_factory("events", queues=["events", "bulk"])
    wait_for(
        lambda: heartbeat_age(EVENTS) is not None, what="the events worker's heartbeat", on_timeout=events.log
    )
    reset_cache()
    metrics = Client().get("/metrics").content.decode()
    assert 'concord_heartbeat_age_seconds{process="worker"}' in metrics
    assert 'concord_heartbeat_age_seconds{process="events"}' in metrics
    assert 'concord_heartbeat_age_seconds{process="beat"}' in metrics
    systems = _systems(support)
    assert "a worker took a task" in systems["worker"] and "not ok" not in systems["worker"]
    assert "an events worker took a task" in systems["events"] and "not ok" not in systems["events"]
    assert "beat last ran" in systems["beat"] and "not ok" not in systems["beat"]

    # The beat's escalation task e-mailed the incident to on-call, once.
    wait_for(
        lambda: SlaEscalation.objects.filter(subject_id=incident_id, status="sent").exists(),
        what="the escalation e-mail",
        on_timeout=lambda: worker.log() + str(list(SlaEscalation.objects.values("status", "error"))),
    )
    time.sleep(2.5)  # two more escalation runs: nothing is sent again
    [sent] = list(mail_dir.iterdir())
    message = sent.read_text()
    assert "To: oncall@shop.example" in message and f"Incident #{incident_id}" in message
    assert SlaEscalation.objects.count() == 1

    # Stop the workers (and beat): after the limit the overview says nothing runs.
    worker.stop()
    events.stop()
    settings.BACKOFFICE_WORKER_SILENT_AFTER = 2
    settings.BACKOFFICE_BEAT_SILENT_AFTER = 2
    time.sleep(3)
    systems = _systems(support)
    assert "not ok" in systems["worker"] and "no worker has taken a task for" in systems["worker"]
    assert "not ok" in systems["events"] and "no events worker has taken a task for" in systems["events"]
    assert "not ok" in systems["beat"] and "beat last ran" in systems["beat"]


def test_an_unreadable_heartbeat_store_says_unknown(support, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    systems = _systems(support)
    assert "unknown: the heartbeat store does not answer" in systems["worker"]
    assert "unknown" in systems["events"] and "unknown" in systems["beat"]
