"""The case file reads each owning app's sources in one statement (issue 16: 25 statements
became 14). Each combined read must return exactly what the separate reads it replaced
return — the same rows, in the same order, with the same Python types (Decimal,
aware datetimes, JSON as decoded by the ORM) — for a rich order (refunds, approvals,
notes, several runs, provider webhooks), a compensated order and an order without a
payment."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice import selectors as bo_selectors
from backoffice.models import ApprovalKind, ApprovalRequest, ApprovalStatus, StaffAction
from idempotency import selectors as idempotency_selectors
from idempotency.models import IdempotencyRecord
from inventory import selectors as inventory_selectors
from inventory.models import Reservation
from notifications import selectors as notification_selectors
from notifications.models import Notification
from orders import selectors as order_selectors
from orders.models import Order
from payments import selectors as payment_selectors
from payments.models import ProviderWebhookEvent
from reconciliation import selectors as recon_selectors
from reconciliation.choices import IncidentState
from sagas import selectors as saga_selectors
from sagas.executor import advance_run
from sagas.models import SagaAction, SagaRun, SagaStepLog
from webhooks import selectors as webhook_selectors
from webhooks.dto import DeliveryDTO
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"


def _act(client, order_id, **data):
    return client.post(reverse("backoffice:order-action", args=[order_id]), data, follow=True)


def _fields(instance) -> list[tuple[str, str]]:
    """Every column's value with its exact repr (type, tzinfo, JSON decoding)."""
    return [(f.attname, repr(getattr(instance, f.attname))) for f in type(instance)._meta.concrete_fields]


def _webhook(event_id: str, payload_object: dict, *, seen_at=None, deliveries: int = 1) -> None:
    event = ProviderWebhookEvent.objects.create(
        event_id=event_id,
        event_type="charge.succeeded",
        payload={"id": event_id, "type": "charge.succeeded", "data": {"object": payload_object}},
        deliveries=deliveries,
        note="n" if deliveries > 1 else "",
    )
    if seen_at is not None:
        ProviderWebhookEvent.objects.filter(pk=event.pk).update(first_seen_at=seen_at, last_seen_at=seen_at)


def assert_combined_reads_equal_the_separate_ones(order_id: int) -> None:
    # orders: the order with its lines, and its audit log
    order, log = order_selectors.order_with_audit_log(order_id=order_id)
    assert repr(order) == repr(order_selectors.order_get(order_id=order_id))
    assert repr(log) == repr(order_selectors.order_audit_log(order_id=order_id))

    # payments: payment, refunds, refundable; then the payment's sources
    story = payment_selectors.payment_story_for_order(order_id=order_id)
    assert repr(story.case) == repr(payment_selectors.payment_case_for_order(order_id=order_id))
    payment = story.case.payment
    if payment is None:
        assert (story.attempts, story.audit, story.ledger, story.webhooks) == ((), (), (), ())
    else:
        assert repr(list(story.attempts)) == repr(
            payment_selectors.provider_attempts_for_payment(payment_id=payment.id)
        )
        assert repr(list(story.audit)) == repr(payment_selectors.payment_audit_log(payment_id=payment.id))
        assert repr(list(story.ledger)) == repr(
            payment_selectors.ledger_entries_for_payment(payment_id=payment.id)
        )
        assert repr(list(story.webhooks)) == repr(
            payment_selectors.webhook_events_about(order_id=order_id, charge_id=payment.provider_charge_id)
        )

    # sagas: every run about the order, each with its steps and staff actions
    runs = saga_selectors.saga_runs_with_logs_for_subject(subject_id=str(order_id))
    separate_runs = saga_selectors.saga_runs_for_subject(subject_id=str(order_id))
    assert repr(list(runs.runs)) == repr(separate_runs)
    assert set(runs.steps) == set(runs.actions) == {r.id for r in separate_runs}
    for run in separate_runs:
        assert repr(list(runs.steps[run.id])) == repr(saga_selectors.saga_step_log(run_id=run.id))
        assert repr(list(runs.actions[run.id])) == repr(saga_selectors.saga_action_log(run_id=run.id))

    # backoffice: approvals and notes, their people joined as select_related joins them
    approvals, notes = bo_selectors.approvals_and_notes_for_order(order_id=order_id)
    separate_approvals = bo_selectors.approvals_for_order(order_id=order_id)
    separate_notes = [
        a for a in bo_selectors.staff_actions_for_order(order_id=order_id) if a.action == bo_selectors.NOTE
    ]
    assert [_fields(a) for a in approvals] == [_fields(a) for a in separate_approvals]
    assert [_fields(n) for n in notes] == [_fields(n) for n in separate_notes]
    with CaptureQueriesContext(connection) as ctx:
        people = [
            (a.requested_by.get_username(), a.decided_by.get_username() if a.decided_by else None)
            for a in approvals
        ] + [(n.user.get_username(), None) for n in notes]
    assert len(ctx.captured_queries) == 0  # joined, not read one by one
    assert people == [
        (a.requested_by.get_username(), a.decided_by.get_username() if a.decided_by else None)
        for a in separate_approvals
    ] + [(n.user.get_username(), None) for n in separate_notes]

    # reconciliation: every incident about the order, worst money first
    assert repr(recon_selectors.incidents_for_order(order_id=order_id)) == repr(
        recon_selectors.incidents_list(order_id=order_id, states=list(IncidentState.values))
    )

    # idempotency, notifications, inventory: statements built once (core.sql.prepared)
    # return what the ORM's filter returns
    order_row = Order.objects.get(pk=order_id)
    window = timedelta(seconds=30)
    assert repr(
        idempotency_selectors.idempotency_records_near(
            client_id=order_row.client_id, around=order_row.created_at
        )
    ) == repr(
        [
            idempotency_selectors._dto(r)
            for r in IdempotencyRecord.objects.filter(
                client_id=order_row.client_id,
                created_at__gte=order_row.created_at - window,
                created_at__lte=order_row.created_at + window,
            ).order_by("created_at", "id")[:50]
        ]
    )
    assert [
        (n.id, n.to, n.subject, n.status, n.apology, n.incident_id, n.created_at, n.sent_at)
        for n in notification_selectors.notifications_for_order(order_id=order_id)
    ] == [
        (n.id, n.to, n.subject, n.status, n.apology, n.incident_id, n.created_at, n.sent_at)
        for n in Notification.objects.filter(order_id=order_id).order_by("id")
    ]
    assert [
        (r.id, r.sku, r.quantity, r.state) for r in inventory_selectors.reservations_for_order(order_id)
    ] == [
        (r.id, r.product_id, r.quantity, str(r.state))
        for r in Reservation.objects.filter(order_id=order_id).order_by("product_id")
    ]

    # webhooks: the deliveries to the shop, as the ORM read them (select_related)
    orm_deliveries = [
        DeliveryDTO.from_model(d)
        for d in WebhookDelivery.objects.filter(order_id=order_id)
        .select_related("endpoint", "event")
        .order_by("sequence", "endpoint_id")
    ]
    assert repr(webhook_selectors.webhook_deliveries_for_order(order_id=order_id)) == repr(orm_deliveries)


def test_a_rich_order_reads_the_same_combined(support, finance, shop, make_incident, support_user):
    # given: a confirmed order (payment captured, ledger posted, checkout run's steps)
    order_id = shop.confirmed()
    payment = payment_selectors.payment_for_order(order_id=order_id)
    # a refund above the threshold, approved by finance (an approval decided, a refund)
    _act(support, order_id, op="refund", amount="60.00", reason="damaged", action_key="r1", confirm="1")
    approval = ApprovalRequest.objects.get(order_id=order_id)
    decide = {"decision": "approve", "reason": "checked", "action_key": "a1"}
    finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), decide)
    # a pending approval whose params hold JSON floats and nesting (JSON types intact)
    ApprovalRequest.objects.create(
        operation="remediate",
        params={"action": "refund_duplicate", "ratio": 0.5, "nested": {"list": [1, 2.5, None, "x"]}},
        kind=ApprovalKind.REMEDIATION,
        status=ApprovalStatus.PENDING,
        order_id=order_id,
        incident_id=make_incident(order_id=order_id, amount="12.34"),
        amount=Decimal("12.34"),
        currency="EUR",
        reason="duplicate",
        requested_by=support_user,
    )
    make_incident(order_id=order_id, amount="99.99", type="stock_drift")
    # two notes (and a staff action that is not a note: not among the notes)
    _act(support, order_id, op="note", reason="customer called", action_key="n1", confirm="1")
    _act(support, order_id, op="note", reason="called back", action_key="n2", confirm="1")
    assert StaffAction.objects.filter(order_id=order_id, action="note").count() == 2
    # a second run about the order, with steps and a staff action, older than the first's end
    other = SagaRun.objects.create(
        saga_type="order_cancellation", subject_id=str(order_id), status="failed", sla_at=timezone.now()
    )
    at = timezone.now() - timedelta(minutes=5)
    for attempt in (1, 2):
        SagaStepLog.objects.create(
            run=other,
            step="refund_payment",
            direction="forward",
            attempt=attempt,
            outcome="retry",
            error=f"HTTP 500 ({attempt})",
            started_at=at + timedelta(seconds=attempt),
        )
    SagaAction.objects.create(
        run=other,
        action="retry_now",
        by=support_user,
        by_username=support_user.username,
        reason="provider back",
        from_status="failed",
        to_status="running",
        direction="forward",
    )
    # the provider's webhooks: by reference, by charge id, a refund of the charge,
    # two at the same moment (ordered by id), and ones about other orders
    payment = payment_selectors.payment_for_order(order_id=order_id)
    charge = payment.provider_charge_id
    assert charge
    same = timezone.now().replace(microsecond=0).astimezone(UTC)
    _webhook("evt_ref", {"id": "ch_other", "reference": str(order_id)}, deliveries=3)
    _webhook("evt_charge", {"id": charge}, seen_at=same)
    _webhook("evt_refund", {"id": "re_1", "charge": charge}, seen_at=same)
    _webhook("evt_int_ref", {"id": "ch_x", "reference": order_id})  # a number: the ORM does not match it
    _webhook("evt_else", {"id": "ch_else", "reference": str(order_id + 1000)})

    # the API request behind it (and one outside the window), a message to the customer
    placed = Order.objects.get(pk=order_id).created_at
    for key, offset in (("k-in", 1), ("k-out", 45)):
        IdempotencyRecord.objects.create(
            client_id=1,
            key=key,
            fingerprint="f" * 64,
            request_method="POST",
            request_path="/api/v1/orders/",
            state="completed",
            response_status=201,
            response_body=b'{"id": 1, "total": "25.00"}',
            response_headers={"Content-Type": "application/json", "n": 1.5},
            created_at=placed + timedelta(seconds=offset),
            expires_at=placed + timedelta(days=1),
        )
    Notification.objects.create(
        event_id=uuid.uuid4(),
        kind="order_confirmed",
        order_id=order_id,
        to="c@example.com",
        subject="Your order",
        body="Thanks",
        incident_id=7,
        sent_at=timezone.now(),
    )

    # then
    assert_combined_reads_equal_the_separate_ones(order_id)
    story = payment_selectors.payment_story_for_order(order_id=order_id)
    # first seen: the two at the same second (by id), then the one seen just now
    assert [w["event_id"] for w in story.webhooks] == ["evt_charge", "evt_refund", "evt_ref"]
    assert story.case.refunds and story.ledger and story.audit and story.attempts
    assert all(type(e["amount"]) is Decimal for e in story.ledger)
    assert all(e["at"].utcoffset() == timedelta(0) for e in story.ledger)
    runs = saga_selectors.saga_runs_with_logs_for_subject(subject_id=str(order_id))
    assert [r.saga_type for r in runs.runs] == ["checkout", "order_cancellation"]
    assert len(runs.steps[other.pk]) == 2 and len(runs.actions[other.pk]) == 1
    approvals, notes = bo_selectors.approvals_and_notes_for_order(order_id=order_id)
    assert [a.status for a in approvals] == ["approved", "pending"]
    assert approvals[1].params == {
        "action": "refund_duplicate",
        "ratio": 0.5,
        "nested": {"list": [1, 2.5, None, "x"]},
    }
    assert type(approvals[1].params["ratio"]) is float and type(approvals[1].amount) is Decimal
    assert [n.reason for n in notes] == ["customer called", "called back"]
    assert len(recon_selectors.incidents_for_order(order_id=order_id)) == 2

    # and the page shows every source
    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    for text in ("order_cancellation #", "Note", "evt_ref", "evt_refund", "Approval #", "stock_drift"):
        assert text in page, text
    assert "evt_int_ref" not in page and "evt_else" not in page


def test_a_compensated_order_reads_the_same_combined(support, shop):
    order_id, run_id = shop.failed_checkout(quantity=2)
    shop.provider_recovers()
    _act(support, order_id, op="compensate", run_id=run_id, reason="gave up", action_key="c1", confirm="1")
    advance_run(run_id, worker_id="test")
    assert saga_selectors.saga_run_get(run_id=run_id).status == "compensated"

    assert_combined_reads_equal_the_separate_ones(order_id)
    runs = saga_selectors.saga_runs_with_logs_for_subject(subject_id=str(order_id))
    assert [a.action for a in runs.actions[run_id]] == ["compensate"]
    assert any(s.direction == "compensate" for s in runs.steps[run_id])


def test_an_order_without_a_payment_reads_nothing_of_payments(support, shop):
    order = Order.objects.create(
        client_id=1,
        customer_email="nopay@example.com",
        currency="EUR",
        total=Decimal("10.00"),
        payment_method="pm_card_ok",
    )
    # a webhook naming the order: the case file reads webhooks only about a payment
    _webhook("evt_orphan", {"id": "ch_orphan", "reference": str(order.pk)})

    assert_combined_reads_equal_the_separate_ones(order.pk)
    story = payment_selectors.payment_story_for_order(order_id=order.pk)
    assert story.case.payment is None and story.webhooks == ()
    runs = saga_selectors.saga_runs_with_logs_for_subject(subject_id=str(order.pk))
    assert runs.runs == () and runs.steps == {} and runs.actions == {}
    page = support.get(reverse("backoffice:order", args=[order.pk]))
    assert page.status_code == 200 and "evt_orphan" not in page.content.decode()


def test_a_missing_order_is_not_found(support):
    from core.errors import NotFound

    with pytest.raises(NotFound):
        order_selectors.order_with_audit_log(order_id=987654321)
    response = support.get(reverse("backoffice:order", args=[987654321]), follow=True)
    assert response.status_code == 200 and "987654321 not found" in response.content.decode()


def test_the_customers_other_orders_are_the_searchs_rows(support, shop):
    from outbox.relay import relay_pass
    from readmodels import selectors as rm_selectors

    ids = [shop.order(email="Some.One@Example.com") for _ in range(3)]
    shop.order(email="someone.else@example.com")
    relay_pass(budget=10)

    rows = rm_selectors.orders_for_email(email="some.one@EXAMPLE.com ", limit=2)
    _, searched = rm_selectors.order_search(q="some.one@EXAMPLE.com ", limit=2)
    assert [_fields(r) for r in rows] == [_fields(r) for r in searched]
    assert [r.order_id for r in rows] == sorted(ids, reverse=True)[:2]
    with CaptureQueriesContext(connection) as ctx:
        rm_selectors.orders_for_email(email="some.one@example.com", limit=11)
    sql = ctx.captured_queries[0]["sql"]
    assert 'LOWER("readmodels_ordersearch"."customer_email") = ' in sql  # the index's expression
    page = support.get(reverse("backoffice:order", args=[ids[0]])).content.decode()
    assert f"Order {ids[1]}</a>" in page and f"Order {ids[2]}</a>" in page
