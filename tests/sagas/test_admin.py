"""The admin shows a run with its timeline and offers only legal operations."""

import pytest
from django.urls import reverse

from sagas.choices import RunStatus
from sagas.executor import advance_run
from sagas.models import SagaAction
from sagas.selectors import saga_run_get

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def test_failed_run_offers_operations_and_retry_needs_a_reason(admin_client, admin_user, start_run):
    run_id = start_run("demo.local")
    demo.plan(run_id, "b", "fail")
    demo.plan(run_id, "a", "fail", direction="compensate")
    assert advance_run(run_id) == RunStatus.COMPENSATION_FAILED

    page = admin_client.get(reverse("admin:sagas_sagarun_change", args=[run_id])).content.decode()
    retry_url = reverse("admin:sagas_sagarun_operate", args=[run_id, "retry_now"])
    assert retry_url in page
    assert reverse("admin:sagas_sagarun_operate", args=[run_id, "compensate"]) not in page
    assert "planned permanent failure" in page  # the step log inline

    response = admin_client.post(retry_url, {"reason": ""})
    assert response.status_code == 200 and SagaAction.objects.count() == 0

    admin_client.post(retry_url, {"reason": "provider fixed"})
    assert saga_run_get(run_id=run_id).status == RunStatus.COMPENSATING
    assert SagaAction.objects.get().by == admin_user


def test_completed_run_offers_nothing(admin_client, start_run):
    run_id = start_run("demo.local")
    advance_run(run_id)

    page = admin_client.get(reverse("admin:sagas_sagarun_change", args=[run_id])).content.decode()
    assert "/operate/" not in page
    response = admin_client.post(
        reverse("admin:sagas_sagarun_operate", args=[run_id, "mark_resolved"]), {"reason": "x"}
    )
    assert response.status_code == 302 and not SagaAction.objects.exists()
