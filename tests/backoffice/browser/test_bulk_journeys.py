"""Issue 14, "support on a bad day", in a real browser with real worker processes:
bulk actions by filter with a preview, run in the background, resumed after the
worker is killed."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from backoffice.models import BulkItem, BulkJob, StaffAction
from sagas.models import SagaAction, SagaRun
from tests.backoffice.bulk_fixtures import failed_runs

from ..conftest import wait_for
from .conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Short chunks, leases and sweeps, so the kill and the resumption take seconds.
BULK_WORKER_ENV = {
    "BACKOFFICE_BULK_CHUNK_SECONDS": "1",
    "BACKOFFICE_BULK_LEASE_SECONDS": "3",
    "BACKOFFICE_BULK_SWEEP_INTERVAL": "1",
}


def _text(page, selector: str) -> str:
    """The progress page reloads itself every 2 s while the job runs: read between reloads."""
    from playwright.sync_api import Error

    for _ in range(20):
        try:
            return page.locator(selector).first.inner_text(timeout=5_000).strip()
        except Error:  # the page navigated away under the read
            time.sleep(0.2)
    raise AssertionError(f"could not read {selector}")


def _finished(page, timeout: float = 60_000) -> None:
    """Wait, through the page's own reloads, until it says the job finished."""
    expect(page.locator("[data-job-state]")).to_have_text("Finished", timeout=timeout)


@pytest.mark.timeout(600)
def test_support_retries_2000_failed_runs_in_one_bulk_action_surviving_a_killed_worker(
    page, live_server, log_in, support_user, celery_worker_factory
):
    # given: 2,000 runs failed at step b with an HTTP 500 since the outage began, and
    # runs the filter must leave alone (declined cards, failures before the outage).
    outage = timezone.now() - timedelta(minutes=20)
    matching = failed_runs(2000, prefix="outage")
    declined = failed_runs(30, error="charge_payment: card declined (HTTP 402)", prefix="declined")
    earlier = failed_runs(20, prefix="earlier", failed_at=outage - timedelta(minutes=10))
    # A worker of the bulk queue only: what is measured is the job, not the saga steps
    # the retries start (those wait in the default queue; the saga tests run them).
    worker = celery_worker_factory("bulk", beat=True, env=BULK_WORKER_ENV, queues=["bulk"])

    log_in(page, "sam", "support-pass-1")
    page.get_by_role("link", name="Stuck sagas").first.click()
    page.get_by_label("State").select_option("failed")
    page.get_by_label("Step").fill("b")
    page.get_by_label("Error contains").fill("HTTP 500")
    page.get_by_label("Changed since").fill(timezone.localtime(outage).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Filter").click()
    # The list counts up to 1,000 (backoffice/paging.py); the bulk preview counts them all.
    assert page.get_by_text("Showing 1 to 50 of 1,000+ saga runs").first.is_visible()
    bulk_form = page.locator("form", has_text="Act on all 1,000+ matching saga runs")
    bulk_form.get_by_label("Reason for all of them (required)").fill("provider outage 14:02, answering again")
    bulk_form.get_by_role("button", name="Preview: retry all").click()

    # the preview: how many, what each will do; nothing changed yet.
    assert page.locator("[data-matched]").inner_text() == "2000"
    assert page.locator("[data-eligible]").inner_text() == "2000"
    assert page.get_by_text("runs step “b” again now").first.is_visible()
    shoot(page, "bulk-preview")
    assert SagaRun.objects.filter(pk__in=matching, status="failed").count() == 2000
    page.get_by_role("button", name=re.compile(r"Confirm: Retry now 2000 items")).click()
    assert page.get_by_text("runs in the background").is_visible()
    job = BulkJob.objects.get()

    # when: the worker is killed halfway through.
    wait_for(
        lambda: job.items.filter(state="done").count() >= 800, timeout=120, what="800 done",
        on_timeout=worker.log,
    )  # fmt: skip
    worker.kill()
    time.sleep(2.5)  # the page reloads itself: what it shows now is after the kill
    halfway = int(_text(page, "[data-processed]"))
    assert 800 <= halfway < 2000, halfway
    assert _text(page, "[data-job-state]") == "Running"

    # then: a new worker's sweeper resumes the job; the page shows it finish.
    resumer = celery_worker_factory("resume", beat=True, env=BULK_WORKER_ENV, queues=["bulk"])
    wait_for(
        lambda: BulkJob.objects.get(pk=job.pk).state == "finished", timeout=180, what="job finished",
        on_timeout=resumer.log,
    )  # fmt: skip
    _finished(page)
    assert _text(page, "[data-processed]") == "2000"
    assert _text(page, '[data-count="done"]') == "2000"

    # every matching run retried exactly once, the others never; one audit row per item.
    retries = Counter(SagaAction.objects.filter(action="retry_now").values_list("run_id", flat=True))
    assert retries == dict.fromkeys(matching, 1)
    assert not SagaAction.objects.filter(run_id__in=declined + earlier).exists()
    audit = StaffAction.objects.filter(action="saga_retry_now")
    assert sorted(audit.values_list("key", flat=True)) == sorted(f"bulk:{job.pk}:{i}" for i in matching)
    assert set(audit.values_list("user__username", "reason")) == {
        ("sam", f"provider outage 14:02, answering again (bulk job #{job.pk})")
    }
    assert BulkItem.objects.filter(job=job).exclude(state="done").count() == 0


OUTAGE_ORDERS = 100  # real checkouts against the sandbox (slow); the 2,000-run test above covers the scale


@pytest.mark.timeout(600)  # real checkouts, each failed then confirmed through the sandbox
def test_one_support_person_clears_an_outage_in_a_few_bulk_actions_with_previews(
    page, live_server, log_in, shop, psp, support_user, make_incident, celery_worker_factory
):
    from orders.models import Order

    from .test_journeys import worker_env

    # given: the provider answered every charge with a 500 for a while: hundreds of
    # checkouts failed at charge_payment, and the detectors opened incidents about them.
    outage = timezone.now() - timedelta(minutes=1)
    failed = [shop.failed_checkout(email=f"c{i}@example.com") for i in range(OUTAGE_ORDERS)]
    order_ids = [order_id for order_id, _ in failed]
    incidents = [make_incident(type="stock_drift", amount="0.00", severity="low") for _ in range(60)]
    shop.provider_recovers()
    worker = celery_worker_factory(env={**worker_env(psp), **BULK_WORKER_ENV})

    log_in(page, "sam", "support-pass-1")
    # 1. every checkout that failed with an HTTP 500 since the outage began: retry.
    page.get_by_role("link", name="Stuck sagas").first.click()
    page.get_by_label("Step").fill("charge_payment")
    page.get_by_label("Error contains").fill("HTTP 500")
    page.get_by_label("Changed since").fill(timezone.localtime(outage).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Filter").click()
    bulk_form = page.locator("form", has_text=f"Act on all {OUTAGE_ORDERS} matching saga runs")
    bulk_form.get_by_label("Reason for all of them (required)").fill("provider outage over")
    bulk_form.get_by_role("button", name="Preview: retry all").click()
    assert page.locator("[data-eligible]").inner_text() == str(OUTAGE_ORDERS)
    assert page.get_by_text(f"{shop.PRICE * OUTAGE_ORDERS} EUR").is_visible()  # the money at stake
    assert page.get_by_text("runs step “charge_payment” again now").first.is_visible()
    page.get_by_role("button", name=re.compile("Confirm: Retry now")).click()
    wait_for(
        lambda: Order.objects.filter(pk__in=order_ids, status="confirmed").count() == OUTAGE_ORDERS,
        timeout=240, what="every order confirmed", on_timeout=worker.log,
    )  # fmt: skip
    _finished(page)
    assert _text(page, '[data-count="done"]') == str(OUTAGE_ORDERS)

    # 2. the incidents: acknowledge them all, then dismiss them all, each with a preview.
    for op, verb in (("acknowledge", "Acknowledge"), ("dismiss", "Dismiss as false positive")):
        page.get_by_role("link", name="Incidents").first.click()
        page.get_by_label("Type").select_option("stock_drift")
        page.get_by_role("button", name="Filter").click()
        form = page.locator("form", has_text="Act on all 60 matching incidents")
        form.get_by_label("Reason for all of them (required)").fill("caused by the provider outage")
        form.get_by_role("button", name=re.compile(f"Preview: {op} all")).click()
        assert page.locator("[data-eligible]").inner_text() == "60"
        page.get_by_role("button", name=re.compile(f"Confirm: {verb}")).click()
        wait_for(
            lambda: BulkJob.objects.order_by("-id").first().state == "finished", timeout=60, what=f"{op} done",
            on_timeout=worker.log,
        )  # fmt: skip
        _finished(page)
        assert _text(page, '[data-count="done"]') == "60"
    shoot(page, "bulk-incidents")

    # then: three bulk actions cleared it; every item has its audit row.
    from reconciliation.selectors import incident_get

    assert {incident_get(incident_id=i).state for i in incidents} == {"dismissed"}
    page.get_by_role("link", name="Bulk jobs").click()
    assert page.get_by_text("Showing 1 to 3 of 3 bulk jobs").first.is_visible()
    assert StaffAction.objects.filter(action="saga_retry_now").count() == OUTAGE_ORDERS
    assert StaffAction.objects.filter(action__in=["incident_acknowledge", "incident_dismiss"]).count() == 120
