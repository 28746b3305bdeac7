"""Support on a bad day, in a real browser: the overview's "Needs attention" puts the
latest item first and says why nothing moves (no worker), the incident page explains
what the detector saw with its runbook, and the incident goes to a colleague."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.heartbeats import heartbeat_forget
from payments.models import Refund
from payments.selectors import payment_for_order
from payments.services.refunds import refund_create
from reconciliation.models import Incident
from reconciliation.selectors import incident_get

from ..conftest import duplicate_charge_found
from .conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_support_sees_what_is_late_reads_the_runbook_and_assigns_the_incident(
    page, live_server, log_in, shop, psp, settings, support_user, support_user2
):
    heartbeat_forget()  # no worker has run in this test: the overview must say so
    # A real duplicate charge (the customer's app paid twice), found by its detector 50
    # minutes ago and not acknowledged (limit 15 min: 35 min late) ...
    incident_id, order_id, kept, extra = duplicate_charge_found(shop, settings)
    Incident.objects.filter(pk=incident_id).update(detected_at=timezone.now() - timedelta(minutes=50))
    # ... and a refund pending for 20 minutes (the refund SLA at 15 min: 5 min late).
    settings.RECONCILIATION = {**settings.RECONCILIATION, "REFUND_PENDING_SLA_SECONDS": 15 * 60}
    other = shop.confirmed()
    refund = refund_create(
        payment_id=payment_for_order(order_id=other).id, amount=Decimal("10.00"), reason="goodwill"
    )
    Refund.objects.filter(pk=refund.id).update(created_at=timezone.now() - timedelta(minutes=20))

    log_in(page, "sam", "support-pass-1")
    attention = page.locator("#needs-attention")
    rows = attention.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_by_role("link").inner_text() == f"Incident #{incident_id}"  # the latest first
    assert rows.nth(1).get_by_role("link").inner_text() == f"Refund #{refund.id}"
    assert rows.nth(0).get_by_text("Incident not acknowledged").is_visible()
    worker = page.locator('[data-pulse="worker"]')
    assert worker.get_by_text("no worker has taken a task yet").is_visible()
    shoot(page, "overview-needs-attention")

    rows.nth(0).get_by_role("link").click()
    explained = page.locator("#explained")
    assert explained.get_by_text(
        f"Order {order_id} was captured 2 times at the provider. Concord keeps {kept}"
    ).is_visible()
    assert explained.get_by_text(f"extra: {extra}").is_visible()
    assert explained.get_by_text("More than one net capture at the provider for one order.").is_visible()
    assert explained.get_by_text("Runbook: what to check").is_visible()
    assert explained.get_by_text("Refunds every capture except the kept one").is_visible()

    form = page.locator("form", has_text="Assign to a support person")
    form.get_by_label("Assign to a support person").select_option(label="sue")
    form.get_by_label("Reason").fill("sue handles duplicate charges this week")
    form.get_by_role("button", name="Assign", exact=True).click()
    assert page.get_by_text("Assigned to sue.").first.is_visible()
    assert incident_get(incident_id=incident_id).assigned_to_id == support_user2.pk
    shoot(page, "incident-runbook")
