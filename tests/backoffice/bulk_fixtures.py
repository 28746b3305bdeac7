"""Many failed saga runs at once (one INSERT per thousand): what an outage leaves behind."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from sagas.choices import RunStatus
from sagas.models import SagaRun

HTTP_500 = "charge_payment: provider answered HTTP 500 (internal error)"


def failed_runs(
    count: int,
    *,
    saga_type: str = "demo.local",
    step: str = "b",
    step_index: int = 1,
    error: str = HTTP_500,
    prefix: str = "bulk",
    failed_at: datetime | None = None,
) -> list[int]:
    """`count` runs of a registered saga type, failed at `step` with `error`, last
    changed at `failed_at` (default now). Their ids, in order."""
    now = timezone.now()
    runs = SagaRun.objects.bulk_create(
        [
            SagaRun(
                saga_type=saga_type,
                subject_id=f"{prefix}-{i}",
                status=RunStatus.FAILED,
                step_index=step_index,
                step=step,
                attempts=3,
                last_error=error,
                failure_code="provider_error",
                sla_at=now - timedelta(minutes=1),
            )
            for i in range(count)
        ],
        batch_size=1000,
    )
    ids = [run.pk for run in runs]
    if failed_at is not None:  # updated_at is auto_now: set it afterwards
        SagaRun.objects.filter(pk__in=ids).update(updated_at=failed_at)
    return ids
