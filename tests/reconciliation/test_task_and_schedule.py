import pytest
from django.conf import settings

from reconciliation.models import ReconciliationRun
from reconciliation.tasks import reconcile

pytestmark = pytest.mark.django_db


def test_beat_runs_the_pass_every_interval():
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile"]
    assert entry["task"] == reconcile.name == "reconciliation.reconcile"
    assert entry["schedule"] == settings.RECONCILE_INTERVAL == 60


def test_money_moving_automation_is_off_by_default():
    from reconciliation.conf import remediation_policy

    for incident_type in settings.RECONCILIATION["AUTO_REMEDIATION"]:
        assert remediation_policy(incident_type).enabled is False
    assert remediation_policy("a_type_nobody_configured").enabled is False


def test_the_task_records_one_run(settings):
    settings.PSP_BASE_URL = "http://127.0.0.1:9"
    settings.PSP_CONNECT_TIMEOUT = 0.2

    run_id = reconcile.apply().get()

    assert ReconciliationRun.objects.get(pk=run_id).status == "partial"  # provider down: recorded, not raised
