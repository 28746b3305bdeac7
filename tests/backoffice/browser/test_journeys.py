"""The main journeys of issue 7 in a real browser."""

from __future__ import annotations

import csv
import io

import pytest

from backoffice.models import ApprovalRequest
from orders.selectors import order_get
from payments.selectors import payment_for_order
from reconciliation.detectors import detector_get
from reconciliation.selectors import incident_get, incidents_list
from reconciliation.services import reconcile_run

from ..conftest import wait_for
from .conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_support_finds_a_failed_saga_reads_the_case_file_retries_it_and_sees_the_order_confirmed(
    page, live_server, log_in, shop, psp, support_user, make_incident, celery_worker_factory
):
    # given: two orders placed through the real checkout while the provider answers
    # every call with a 500; their runs exhausted their attempts and wait for a person.
    order_id, run_id = shop.failed_checkout()
    shop.failed_checkout(email="other@example.com")
    make_incident(order_id=order_id, amount="60.00", type="charge_without_order", severity="critical")
    make_incident(amount="12.00", severity="medium")
    worker = celery_worker_factory(env=worker_env(psp))  # the worker the retry's poke wakes

    log_in(page, "sam", "support-pass-1")
    shoot(page, "overview")
    page.get_by_role("link", name="Stuck sagas").first.click()
    page.get_by_label("Error contains").fill("HTTP 500")
    page.get_by_role("button", name="Filter").click()
    shoot(page, "stuck-sagas")
    page.get_by_role("link", name=f"Order {order_id}").click()

    assert page.get_by_text("charge_payment (forward) attempt 1 → retry").is_visible()
    assert page.get_by_text("charge transient: HTTP 500").first.is_visible()
    shoot(page, "case-file")
    shop.provider_recovers()
    form = page.locator("form", has_text=f"Retry now (saga #{run_id})")
    form.get_by_label("Reason (required)").fill("provider is answering again")
    form.get_by_role("button", name="Preview").click()
    assert page.get_by_text("runs step “charge_payment” again now").is_visible()
    shoot(page, "action-preview")
    page.get_by_role("button", name="Confirm").click()
    assert page.get_by_text(f"Retry now: done for saga #{run_id}.").is_visible()

    # then: the worker runs the charge (same key) and confirms the order.
    wait_for(
        lambda: order_get(order_id=order_id).status == "confirmed", what="confirmed", on_timeout=worker.log
    )
    page.reload()
    assert page.locator("h1").get_by_text("confirmed").is_visible()
    assert page.get_by_text("confirm_order (forward) attempt 1 → done").is_visible()


def test_support_runs_the_suggested_remediation_and_resolves_the_incident(
    page, live_server, log_in, shop, psp, support_user, settings
):
    # given: a confirmed order the customer's app paid twice (a retry with a new key).
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}
    order_id = shop.confirmed()
    extra = psp.client().create_charge(
        amount=6000, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key="app-retry-with-a-new-key",
    ).charge  # fmt: skip
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    [incident] = incidents_list(order_id=order_id, types=["duplicate_charge"])

    log_in(page, "sam", "support-pass-1")
    page.get_by_role("link", name="Incidents").first.click()
    shoot(page, "incidents")
    page.get_by_role("link", name=f"#{incident.id}").click()
    page.get_by_role("button", name="Assign to me").click()
    form = page.locator("form", has_text="Refund the extra charges")
    form.get_by_label("Reason (required)").fill("customer charged twice")
    form.get_by_role("button", name="Preview remediation").click()
    assert page.get_by_text("Money: 60.00 EUR back to the customer").is_visible()
    shoot(page, "remediation-preview")
    page.get_by_role("button", name="Confirm: Refund the extra charges").click()
    assert page.get_by_text("Refund the extra charges: succeeded, 60.00 EUR moved.").is_visible()
    refunds = psp.request("GET", "/v1/refunds", params={"charge": extra.id}).json()["data"]
    assert [r["amount"] for r in refunds] == [6000]

    page.locator("#close-reason").fill("extra charge refunded at the provider")
    page.get_by_role("button", name="Preview resolve").click()
    page.get_by_role("button", name="Confirm: Resolve").click()
    assert page.get_by_text("Resolve: done.").is_visible()
    shoot(page, "incident")
    closed = incident_get(incident_id=incident.id)
    assert (closed.state, closed.resolution_reason) == ("resolved", "extra charge refunded at the provider")


def test_a_large_refund_waits_for_finance_approval_then_reaches_the_provider(
    page, browser, live_server, log_in, shop, psp, support_user, finance_user, settings, celery_worker_factory
):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"
    order_id = shop.confirmed()
    worker = celery_worker_factory(env=worker_env(psp))  # sends the refund once approved
    log_in(page, "sam", "support-pass-1")
    page.goto(f"{live_server.url}/backoffice/orders/{order_id}/")
    form = page.locator("form", has_text="Refund (full or partial)")
    form.get_by_label("Amount").fill("60.00")
    form.get_by_label("Reason (required)").fill("parcel lost")
    form.get_by_role("button", name="Preview").click()
    assert page.get_by_text("waits for a second person from finance").is_visible()
    page.get_by_role("button", name="Confirm").click()
    assert page.get_by_text("Refund waits for finance approval").is_visible()
    assert ApprovalRequest.objects.get().status == "pending"

    finance_page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(finance_page, "fay", "finance-pass-1")
    finance_page.get_by_role("link", name="Approvals").click()
    shoot(finance_page, "approvals")
    finance_page.get_by_label("Reason (required)").fill("carrier confirmed the loss")
    finance_page.get_by_role("button", name="Approve refund of 60.00 EUR").click()
    assert finance_page.get_by_text("Approved: refund #").is_visible()
    approval = ApprovalRequest.objects.get()
    assert (approval.status, approval.decided_by_id) == ("approved", finance_user.pk)
    finance_page.context.close()

    payment = payment_for_order(order_id=order_id)
    wait_for(
        lambda: payment_for_order(order_id=order_id).status == "refunded",
        what="the refund to succeed at the provider",
        on_timeout=worker.log,
    )
    page.reload()
    assert page.locator(".badge.refunded").first.is_visible()
    assert page.get_by_text("Provider refund → succeeded").is_visible()
    shoot(page, "case-file-refunded")
    at_provider = psp.request("GET", "/v1/refunds", params={"charge": payment.provider_charge_id}).json()
    assert [r["amount"] for r in at_provider["data"]] == [6000]


def test_finance_sees_the_lag_then_the_figures_the_trends_and_the_ledger(
    page, live_server, log_in, finance_user, make_incident, shop, psp, celery_worker_factory
):
    make_incident(amount="40.00")
    make_incident(amount="15.00", type="charge_without_order", severity="critical")
    log_in(page, "fay", "finance-pass-1")
    page.get_by_role("link", name="Finance").click()
    # No worker yet: the read model has not seen the two incidents, and says so.
    assert page.locator("#lag-line").get_by_text("behind (2 events pending)").is_visible()

    worker = celery_worker_factory(beat=True, env={**worker_env(psp), "OUTBOX_POLL_INTERVAL": "0.5"})
    wait_for(
        lambda: page.reload() or "Figures are up to date." in page.locator("#lag-line").inner_text(),
        what="the relay to feed the finance read model",
        on_timeout=worker.log,
    )
    assert page.locator("svg.chart").is_visible()
    assert page.locator("#card-at-risk").get_by_text("55.00 EUR").first.is_visible()
    assert page.locator("#card-impacting .stat").inner_text() == "2"
    shoot(page, "finance")
    with page.expect_download() as info:
        page.get_by_role("link", name="Per day (CSV)").click()
    rows = list(csv.reader(io.StringIO(open(info.value.path(), encoding="utf-8").read())))
    day = dict(zip(rows[0], rows[1], strict=True))
    assert (day["currency"], day["incidents"], day["money_at_risk"]) == ("EUR", "2", "55.00")
    with page.expect_download() as info:
        page.get_by_role("link", name="Per incident (CSV)").click()
    incidents = list(csv.DictReader(io.StringIO(open(info.value.path(), encoding="utf-8").read())))
    assert sorted(r["type"] for r in incidents) == ["charge_without_order", "duplicate_charge"]

    page.get_by_role("link", name="Trends (12 weeks)").click()
    assert page.get_by_role("heading", name="Incident trends, last 12 weeks").is_visible()
    assert page.locator("#lag-line").get_by_text("Figures are up to date.").is_visible()
    trends = page.locator("#trends tbody tr")
    assert sorted(trends.evaluate_all("rows => rows.map(r => r.dataset.type)")) == [
        "charge_without_order",
        "duplicate_charge",
    ]
    assert page.locator('#trends tr[data-type="duplicate_charge"] td').nth(4).inner_text() == "40.00"
    shoot(page, "finance-trends")
    page.get_by_role("link", name="Finance").first.click()
    page.get_by_role("link", name="Ledger").click()
    assert page.get_by_role("heading", name="Provider clearing against the provider's own net").is_visible()
    page.get_by_role("link", name="State map").click()
    shoot(page, "state-map")


def worker_env(psp) -> dict[str, str]:
    """A worker process reaches the same sandbox as the test."""
    return {"PSP_BASE_URL": psp.base_url, "PSP_API_KEY": psp.api_key, "PSP_READ_TIMEOUT": "2"}


def test_support_sees_the_customer_message_and_the_shop_webhook_and_replays_a_failed_delivery(
    page, live_server, log_in, shop, support_user, settings
):
    from django.core import mail

    from notifications.sending import send_pending
    from outbox.relay import relay_pass
    from tests.fixtures.psp import WebhookSink
    from webhooks.delivery import deliver_due
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_endpoint_create

    # given: a shop's endpoint that answered 500 to every attempt, so the delivery of
    # the order's confirmation failed and the endpoint was disabled.
    settings.WEBHOOK_RETRY_SCHEDULE = (0, 0)
    sink = WebhookSink()
    try:
        webhook_endpoint_create(client_id=1, url=sink.url, event_types=["order.confirmed"])
        order_id = shop.confirmed()
        relay_pass()
        send_pending()
        sink.respond_with(500, 500, 500)
        deliver_due()
        delivery = WebhookDelivery.objects.get(order_id=order_id)
        assert delivery.status == "failed" and len(mail.outbox) == 1

        log_in(page, "sam", "support-pass-1")
        page.goto(f"{live_server.url}/backoffice/orders/{order_id}/")
        messages = page.locator("section", has=page.get_by_role("heading", name="Messages to the customer"))
        assert messages.get_by_text(f"Your order {order_id} is confirmed").is_visible()
        deliveries = page.locator(
            "section", has=page.get_by_role("heading", name="Webhook deliveries to the shop")
        )
        assert deliveries.get_by_text("order.confirmed").is_visible()
        assert deliveries.locator(".badge.failed").is_visible()
        shoot(page, "case-file-events")

        form = page.locator("form", has_text=f"Replay webhook delivery #{delivery.pk}")
        form.get_by_label("Reason (required)").fill("the shop fixed its server")
        form.get_by_role("button", name="Preview").click()
        assert page.get_by_text("with the same webhook-id").is_visible()
        page.get_by_role("button", name="Confirm").click()
        assert page.get_by_text(f"Webhook delivery #{delivery.pk} is being sent again.").is_visible()

        # then: the sender delivers it; the case file says so.
        deliver_due()
        assert [r.answered for r in sink.received] == [500, 500, 500, 200]
        page.reload()
        assert deliveries.locator(".badge.succeeded").is_visible()
    finally:
        sink.close()
