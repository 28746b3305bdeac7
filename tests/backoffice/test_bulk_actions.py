"""Bulk actions by filter: preview, durable jobs, one audited action per item, resumption,
and every list paging with its total."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

import tests.sagas.demo  # noqa: F401  (registers demo.local, the runs' saga type)
from backoffice import bulk
from backoffice.models import ApprovalRequest, BulkItem, BulkItemState, BulkJob, BulkJobState, StaffAction
from outbox.relay import relay_pass
from reconciliation.detectors import detector_get
from reconciliation.selectors import incident_get, incidents_list
from reconciliation.services import reconcile_run
from sagas.models import SagaAction, SagaRun
from tests.backoffice.bulk_fixtures import HTTP_500, failed_runs
from tests.backoffice.conftest import login

pytestmark = pytest.mark.django_db

FILTER = {"page_kind": "saga", "status": "failed", "step": "b", "error": "HTTP 500"}


def _outage():
    """130 runs failed with HTTP 500 at step b after 14:02, and the runs the filter must
    leave alone: another error, another step, and failures before 14:02."""
    since = timezone.now() - timedelta(minutes=30)
    matching = failed_runs(130, prefix="match")
    failed_runs(7, error="charge_payment: card declined (HTTP 402)", prefix="declined")
    failed_runs(5, step="c", step_index=2, prefix="other-step")
    failed_runs(4, prefix="before", failed_at=since - timedelta(minutes=5))
    return matching, since


def _since(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def _run_to_the_end(job_id: int) -> None:
    for i in range(100):
        if not bulk.bulk_run_chunk(job_id=job_id, owner=f"test-{i}", budget=5.0):
            return
    raise AssertionError("the job did not finish")


def test_the_preview_says_how_many_how_much_and_what_each_will_do_and_changes_nothing(support):
    matching, since = _outage()

    page = support.post(
        reverse("backoffice:bulk-preview"),
        {**FILTER, "since": _since(since), "op": "retry_now", "reason": "provider is back"},
    ).content.decode()

    assert "data-matched>130<" in page
    assert "data-eligible>130<" in page
    assert "runs step “b” again now" in page  # the operation's own preview, per sample
    assert "Confirm: Retry now 130 items" in page
    assert not BulkJob.objects.exists()
    assert SagaRun.objects.filter(pk__in=matching, status="failed").count() == 130


def test_a_bulk_retry_runs_each_matching_run_once_with_one_audit_row_each(support, support_user):
    matching, since = _outage()
    data = {
        **FILTER,
        "since": _since(since),
        "op": "retry_now",
        "reason": "provider is back",
        "action_key": "k1",
    }

    response = support.post(reverse("backoffice:bulk-start"), data)
    again = support.post(reverse("backoffice:bulk-start"), data)  # a double submit: the same job

    job = BulkJob.objects.get()
    assert response.url == again.url == reverse("backoffice:bulk-job", args=[job.pk])
    assert job.total == 130
    _run_to_the_end(job.pk)

    job.refresh_from_db()
    assert job.state == BulkJobState.FINISHED
    assert Counter(job.items.values_list("state", flat=True)) == {BulkItemState.DONE: 130}
    retries = Counter(SagaAction.objects.filter(action="retry_now").values_list("run_id", flat=True))
    assert retries == dict.fromkeys(matching, 1)
    audit = StaffAction.objects.filter(action="saga_retry_now")
    assert audit.count() == 130
    assert {a.reason for a in audit} == {f"provider is back (bulk job #{job.pk})"}
    assert {a.user_id for a in audit} == {support_user.pk}
    assert set(audit.values_list("key", flat=True)) == {f"bulk:{job.pk}:{run_id}" for run_id in matching}
    # The others were left alone.
    assert SagaRun.objects.exclude(pk__in=matching).filter(status="failed").count() == 16
    progress = support.get(reverse("backoffice:bulk-job", args=[job.pk])).content.decode()
    assert "data-processed>130<" in progress
    assert 'data-count="done">130<' in progress


def test_a_job_whose_worker_died_is_resumed_and_repeats_nothing(support):
    matching, since = _outage()
    support.post(
        reverse("backoffice:bulk-start"),
        {**FILTER, "since": _since(since), "op": "retry_now", "reason": "outage", "action_key": "k2"},
    )
    job = BulkJob.objects.get()
    # A worker took the job, ran one batch and died holding the lease. Worst case for
    # its last item: the retry and its audit row committed but the item still says
    # pending (they commit together in the code; the test forces the split).
    assert bulk.bulk_run_chunk(job_id=job.pk, owner="dead", budget=0.0)
    done = list(job.items.filter(state=BulkItemState.DONE).order_by("id"))
    assert done
    BulkItem.objects.filter(pk=done[-1].pk).update(state=BulkItemState.PENDING)
    BulkJob.objects.filter(pk=job.pk).update(
        lease_owner="dead", lease_expires_at=timezone.now() + timedelta(hours=1)
    )

    assert bulk.bulk_jobs_stale() == []  # the lease still runs
    assert not bulk.bulk_run_chunk(job_id=job.pk, owner="other", budget=5.0)  # held by the dead worker
    later = timezone.now() + timedelta(hours=2)
    assert bulk.bulk_jobs_stale(now=later) == [job.pk]
    BulkJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    _run_to_the_end(job.pk)

    retries = Counter(SagaAction.objects.filter(action="retry_now").values_list("run_id", flat=True))
    assert retries == dict.fromkeys(matching, 1)
    resumed = BulkItem.objects.get(pk=done[-1].pk)
    assert resumed.state == BulkItemState.DONE
    assert "not done twice" in resumed.outcome


def test_an_item_no_longer_possible_when_its_turn_comes_is_skipped_not_forced(support, support_user):
    ids = failed_runs(3, prefix="late")
    support.post(
        reverse("backoffice:bulk-start"),
        {**FILTER, "op": "retry_now", "reason": "outage", "action_key": "k3"},
    )
    job = BulkJob.objects.get()
    from sagas.services import saga_mark_resolved

    saga_mark_resolved(run_id=ids[1], by=support_user, reason="fixed by hand meanwhile")
    _run_to_the_end(job.pk)

    states = dict(job.items.values_list("subject_id", "state"))
    assert states == {ids[0]: "done", ids[1]: "skipped", ids[2]: "done"}
    assert not SagaAction.objects.filter(run_id=ids[1], action="retry_now").exists()


def test_only_support_may_preview_or_start_and_bad_input_is_a_message(finance, support):
    failed_runs(2)
    for url in ("backoffice:bulk-preview", "backoffice:bulk-start"):
        response = finance.post(reverse(url), {**FILTER, "op": "retry_now", "reason": "x", "action_key": "k"})
        assert response.status_code in (302, 403)
    assert not BulkJob.objects.exists()

    bad_since = support.post(
        reverse("backoffice:bulk-preview"), {**FILTER, "since": "yesterday-ish", "op": "retry_now", "reason": "x"},
        follow=True,
    )  # fmt: skip
    not_bulk = support.post(
        reverse("backoffice:bulk-preview"), {**FILTER, "op": "mark_resolved", "reason": "x"}, follow=True
    )
    forged = support.post(
        reverse("backoffice:bulk-start"),
        {**FILTER, "page_kind": "nope", "op": "skip_step", "reason": "x", "action_key": "k9"},
        follow=True,
    )
    assert bad_since.status_code == not_bulk.status_code == forged.status_code == 200
    assert "is not a time" in bad_since.content.decode()
    assert "cannot run in bulk" in not_bulk.content.decode()
    assert "cannot run in bulk" in forged.content.decode()
    assert not BulkJob.objects.exists()


def test_bulk_acknowledge_and_remediate_go_through_the_registry_item_by_item(
    support, support_user, make_incident, settings, shop
):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"
    small = [make_incident(type="stock_drift", amount="0.00", severity="low") for _ in range(3)]
    acknowledged = support.post(
        reverse("backoffice:bulk-start"),
        {
            "page_kind": "incident",
            "type": "stock_drift",
            "op": "acknowledge",
            "reason": "seen",
            "action_key": "i1",
        },
    )
    job = BulkJob.objects.get()
    assert acknowledged.status_code == 302
    _run_to_the_end(job.pk)
    assert {incident_get(incident_id=i).state for i in small} == {"acknowledged"}
    assert StaffAction.objects.filter(action="incident_acknowledge").count() == 3

    # Acknowledged incidents are not offered "acknowledge" again: a second job has nothing to do.
    again = support.post(
        reverse("backoffice:bulk-start"),
        {
            "page_kind": "incident",
            "type": "stock_drift",
            "op": "acknowledge",
            "reason": "seen",
            "action_key": "i2",
        },
        follow=True,
    )
    assert "Nothing to do" in again.content.decode()

    # A refund remediation above the threshold waits for finance, one approval per item:
    # a real duplicate charge of 60.00 at the sandbox provider.
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}
    order_id = shop.confirmed()
    shop.psp.client().create_charge(
        amount=6000, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key="app-retry-with-a-new-key",
    )  # fmt: skip
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    [big] = [i.id for i in incidents_list(order_id=order_id, types=["duplicate_charge"])]
    support.post(
        reverse("backoffice:bulk-start"),
        {"page_kind": "incident", "type": "duplicate_charge", "op": "remediate", "reason": "refund the doubles",
         "action_key": "i3"},
    )  # fmt: skip
    job = BulkJob.objects.get(key="i3")
    _run_to_the_end(job.pk)
    [item] = job.items.all()
    assert item.subject_id == big
    assert item.state == BulkItemState.APPROVAL, item.outcome
    approval = ApprovalRequest.objects.get(incident_id=big)
    assert (approval.kind, approval.requested_by_id, approval.amount) == ("remediation", support_user.pk, 60)


def test_every_list_pages_past_fifty_and_shows_its_total(support, finance, make_incident, shop):
    failed_runs(123, error=HTTP_500)
    first = support.get(reverse("backoffice:sagas")).content.decode()
    third = support.get(reverse("backoffice:sagas") + "?page=3").content.decode()
    assert "Showing 1 to 50 of <strong data-total>123</strong> saga runs" in first
    assert "Showing 101 to 123 of <strong data-total>123</strong> saga runs" in third
    assert third.count('name="run_ids"') == 23
    assert (
        "Showing 1 to 50 of <strong data-total>123</strong>"
        in support.get(reverse("backoffice:sagas") + "?page=abc").content.decode()
    )

    for _ in range(55):
        make_incident(type="stock_drift", amount="1.00", severity="low")
    second = support.get(reverse("backoffice:incidents") + "?page=2").content.decode()
    assert "Showing 51 to 55 of <strong data-total>55</strong> incidents" in second

    shop.provider_recovers()
    for _ in range(52):
        shop.order(email="many@example.com")
    relay_pass(budget=10)  # the search reads its read model: feed it
    orders = support.get(reverse("backoffice:search") + "?q=many@example.com&page=2").content.decode()
    assert "Showing 51 to 52 of <strong data-total>52</strong> orders" in orders

    ApprovalRequest.objects.bulk_create(
        [
            ApprovalRequest(operation="refund_request", kind="refund", order_id=1, amount="150.00",
                            currency="EUR", reason="big", requested_by_id=support.session["_auth_user_id"])
            for _ in range(51)
        ]
    )  # fmt: skip
    approvals = finance.get(reverse("backoffice:approvals") + "?page=2").content.decode()
    assert "Showing 51 to 51 of <strong data-total>51</strong> approvals" in approvals


def test_a_stopped_job_starts_no_more_items_and_only_its_starter_or_finance_may_stop_it(
    support, support_user2, finance
):
    support2 = login(support_user2)
    ids = failed_runs(120, prefix="stop")
    support.post(
        reverse("backoffice:bulk-start"),
        {**FILTER, "op": "retry_now", "reason": "outage", "action_key": "s1"},
    )
    job = BulkJob.objects.get()
    assert bulk.bulk_run_chunk(job_id=job.pk, owner="w", budget=0.0)  # one batch, then more to do

    refused = support2.post(reverse("backoffice:bulk-stop", args=[job.pk]), follow=True)
    assert "Only the person who started it" in refused.content.decode()
    support.post(reverse("backoffice:bulk-stop", args=[job.pk]))
    assert not bulk.bulk_run_chunk(job_id=job.pk, owner="w2", budget=5.0)
    assert bulk.bulk_jobs_stale() == []

    job.refresh_from_db()
    done = job.items.filter(state="done").count()
    assert job.state == BulkJobState.STOPPED
    assert done == bulk.BATCH
    assert SagaAction.objects.filter(run_id__in=ids, action="retry_now").count() == done
    page = finance.get(reverse("backoffice:bulk-job", args=[job.pk])).content.decode()
    assert "Stopped by a person" in page


def test_an_item_key_taken_by_a_forged_form_is_not_counted_as_done(support, support_user2):
    ids = failed_runs(2, prefix="forged")
    support.post(
        reverse("backoffice:bulk-start"),
        {**FILTER, "op": "retry_now", "reason": "outage", "action_key": "f1"},
    )
    job = BulkJob.objects.get()
    # Another person posts some action with the item's key before the worker gets to it.
    StaffAction.objects.create(
        key=f"bulk:{job.pk}:{ids[0]}", user=support_user2, action="note", reason="forged"
    )
    _run_to_the_end(job.pk)

    states = dict(job.items.values_list("subject_id", "state"))
    assert states == {ids[0]: "failed", ids[1]: "done"}
    assert not SagaAction.objects.filter(run_id=ids[0]).exists()


def test_bulk_assign_to_a_colleague_runs_per_item_and_a_forged_assignee_is_refused_up_front(
    support, support_user2, finance_user, make_incident
):
    incidents = [make_incident(type="stock_drift", amount="0.00", severity="low") for _ in range(4)]
    form = {"page_kind": "incident", "type": "stock_drift", "op": "assign", "reason": "sue takes stock"}

    # A forged id, a finance person, or nobody chosen: a message, and no job is created.
    for forged in ("999999", str(finance_user.pk), "", "'; drop table"):
        preview = support.post(
            reverse("backoffice:bulk-preview"), {**form, "assignee_id": forged}, follow=True
        )
        assert preview.status_code == 200
        assert "support person" in preview.content.decode()
        started = support.post(
            reverse("backoffice:bulk-start"),
            {**form, "assignee_id": forged, "action_key": f"a-{forged}"},
            follow=True,
        )
        assert "support person" in started.content.decode()
    assert not BulkJob.objects.exists()

    preview = support.post(reverse("backoffice:bulk-preview"), {**form, "assignee_id": str(support_user2.pk)})
    body = preview.content.decode()
    assert "Assign to sue" in body and f'name="assignee_id" value="{support_user2.pk}"' in body

    support.post(
        reverse("backoffice:bulk-start"), {**form, "assignee_id": str(support_user2.pk), "action_key": "a1"}
    )
    job = BulkJob.objects.get(key="a1")
    _run_to_the_end(job.pk)
    assert {incident_get(incident_id=i).assigned_to_id for i in incidents} == {support_user2.pk}
    assert StaffAction.objects.filter(action="incident_assign").count() == 4
    assert Counter(job.items.values_list("state", flat=True)) == {BulkItemState.DONE: 4}
