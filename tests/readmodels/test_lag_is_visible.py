"""The read models' lag is a number people and machines see: /readyz (details),
/metrics, the overview, and the finance and search pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from backoffice.roles import FINANCE, SUPPORT, staff_create
from outbox.models import Event
from outbox.relay import relay_pass
from reconciliation.services import Finding, incidents_report
from tests.monitoring.conftest import scrape

pytestmark = pytest.mark.django_db


def an_incident() -> None:
    with transaction.atomic():
        incidents_report(
            findings=[Finding(type="duplicate_charge", fingerprint="duplicate_charge:lag", severity="high")]
        )


def test_readyz_and_metrics_name_a_lagging_read_model(client, settings, processes_alive):
    settings.OUTBOX_LAG_READY_SECONDS = 30
    settings.READYZ_TOKEN = "readyz-secret"
    an_incident()
    Event.objects.update(created_at=timezone.now() - timedelta(seconds=90))

    body = client.get("/readyz", headers={"Authorization": "Bearer readyz-secret"}).json()
    assert body["status"] == "degraded"
    assert body["details"]["outbox"]["lagging"]["finance"]["pending"] == 1
    metrics = scrape(client)
    assert metrics.value("concord_outbox_events_pending", consumer="finance") == 1
    assert metrics.value("concord_outbox_oldest_pending_seconds", consumer="finance") >= 90
    relay_pass(budget=5)
    assert "details" not in client.get("/readyz", headers={"Authorization": "Bearer readyz-secret"}).json()


def test_the_overview_and_the_pages_show_the_lag(client):
    an_incident()
    client.force_login(staff_create(username="sam", role=SUPPORT, password="support-pass-1"))
    overview = client.get("/backoffice/").content.decode()
    assert 'data-consumer="finance"' in overview and 'data-consumer="search"' in overview
    search = client.get("/backoffice/search/?q=nobody@example.com").content.decode()
    assert "Search index: " in search
    client.force_login(staff_create(username="fay", role=FINANCE, password="finance-pass-1"))
    assert "behind (1 event pending)" in client.get("/backoffice/finance/").content.decode()
    relay_pass(budget=5)
    assert "Figures are up to date." in client.get("/backoffice/finance/").content.decode()


def test_search_refuses_bad_input_with_a_message(client):
    client.force_login(staff_create(username="sam", role=SUPPORT, password="support-pass-1"))
    huge = client.get("/backoffice/search/?q=" + "9" * 30)
    assert huge.status_code == 200 and "No orders found." in huge.content.decode()
    bad = client.get("/backoffice/search/?status=nonsense")
    assert bad.status_code == 200 and "Unknown status" in bad.content.decode()
