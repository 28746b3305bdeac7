from datetime import timedelta

import pytest
from django.utils import timezone

from idempotency import tasks
from idempotency.models import IdempotencyRecord
from idempotency.services import idempotency_purge_expired

pytestmark = pytest.mark.django_db


def _record(key, expires_at):
    return IdempotencyRecord.objects.create(
        client_id=1,
        key=key,
        fingerprint="0" * 64,
        request_method="POST",
        request_path="/api/v1/x/",
        state="completed",
        response_status=201,
        response_body=b"{}",
        created_at=expires_at - timedelta(hours=24),
        expires_at=expires_at,
    )


def test_purge_removes_only_expired_records():
    now = timezone.now()
    _record("expired-long-ago", now - timedelta(days=3))
    _record("expired-just-now", now)
    _record("still-valid", now + timedelta(seconds=1))

    deleted = idempotency_purge_expired(now=now)

    assert deleted == 2
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["still-valid"]
    assert idempotency_purge_expired(now=now) == 0


def test_purge_task_uses_the_current_time():
    _record("old", timezone.now() - timedelta(hours=1))
    _record("new", timezone.now() + timedelta(hours=23))

    assert tasks.purge_expired() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_purge_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["idempotency-purge-expired"]
    assert entry["task"] == tasks.purge_expired.name


def test_records_are_kept_at_least_a_day(settings):
    from django.core.checks import run_checks

    assert settings.IDEMPOTENCY_TTL >= timedelta(hours=24)
    settings.IDEMPOTENCY_TTL = timedelta(hours=1)
    assert "idempotency.E001" in [e.id for e in run_checks()]
