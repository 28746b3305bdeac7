"""Back-office refunds actually move money: after commit a Celery task
(backoffice.tasks.refund_send) asks the sandbox provider with the refund's fixed key;
however often it is retried, the refund exists at the provider once."""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice import tasks
from backoffice.models import ApprovalRequest, StaffAction
from config.celery_app import app as celery_app
from payments.selectors import payment_for_order, provider_attempts_for_payment, refunds_for_payment

from .conftest import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    """The task runs inline when its on-commit callback fires (as a worker would run it)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def _refund(client, order_id, amount, key):
    data = {"op": "refund", "amount": amount, "reason": "damaged", "action_key": key, "confirm": "1"}
    return client.post(reverse("backoffice:order-action", args=[order_id]), data, follow=True)


def provider_refunds(psp, charge_id: str) -> list[dict]:
    return psp.request("GET", "/v1/refunds", params={"charge": charge_id}).json()["data"]


def test_a_refund_is_sent_after_commit_and_the_case_file_shows_it_succeed(
    support, shop, eager, django_capture_on_commit_callbacks
):
    order_id = shop.confirmed()
    payment = payment_for_order(order_id=order_id)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        page = _refund(support, order_id, "20.00", "r1").content.decode()

    assert "being sent to the provider" in page
    assert len(callbacks) == 1
    [refund] = refunds_for_payment(payment_id=payment.id)
    assert (refund.status, refund.amount) == ("succeeded", Decimal("20.00"))
    [at_provider] = provider_refunds(shop.psp, payment.provider_charge_id)
    assert (at_provider["id"], at_provider["amount"]) == (refund.provider_refund_id, 2000)
    assert payment_for_order(order_id=order_id).status == "partially_refunded"
    case = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert f"at the provider as {refund.provider_refund_id}" in case
    assert f"Provider refund → succeeded ({refund.provider_refund_id})" in case
    assert f"Refund {refund.id} pending → succeeded" in case

    # A duplicated or retried task message changes nothing.
    assert tasks.refund_send(payment.id, refund.idempotency_key) == "already succeeded"
    assert len(provider_refunds(shop.psp, payment.provider_charge_id)) == 1


def test_an_unanswered_refund_stays_pending_and_sending_again_refunds_exactly_once(
    support, shop, settings, django_capture_on_commit_callbacks
):
    settings.PSP_READ_TIMEOUT = 0.5
    order_id = shop.confirmed()
    payment = payment_for_order(order_id=order_id)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _refund(support, order_id, "15.00", "r2")
    assert len(callbacks) == 1  # the task is queued only once the refund is committed
    [refund] = refunds_for_payment(payment_id=payment.id)

    # The provider records the refund, then never answers in time: the task retries.
    shop.psp.set_faults(timeout_after_commit_rate=1.0)
    with pytest.raises(tasks.RefundStillPending):
        tasks.refund_send(payment.id, refund.idempotency_key)
    assert refunds_for_payment(payment_id=payment.id)[0].status == "pending"
    assert len(provider_refunds(shop.psp, payment.provider_charge_id)) == 1
    case = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert "being sent to the provider" in case
    assert "Provider refund → unknown" in case
    assert f"Send refund #{refund.id} (15.00 EUR) to the provider again" in case

    # The provider recovers; a person sends it again (preview first, then once).
    shop.provider_recovers()
    data = {"op": "resend_refund", "refund_id": refund.id, "reason": "provider is back", "action_key": "s1"}
    preview = support.post(reverse("backoffice:order-action", args=[order_id]), data).content.decode()
    assert "the money goes back at most once" in preview
    assert refunds_for_payment(payment_id=payment.id)[0].status == "pending"
    done = support.post(
        reverse("backoffice:order-action", args=[order_id]), {**data, "confirm": "1"}, follow=True
    ).content.decode()
    again = support.post(
        reverse("backoffice:order-action", args=[order_id]), {**data, "confirm": "1"}, follow=True
    ).content.decode()

    assert f"Refund #{refund.id} succeeded at the provider." in done
    assert "not possible for this order now" in again  # nothing pending any more
    [refund] = refunds_for_payment(payment_id=payment.id)
    [at_provider] = provider_refunds(shop.psp, payment.provider_charge_id)
    assert (refund.status, refund.provider_refund_id) == ("succeeded", at_provider["id"])
    assert refund_attempts(payment.id) == ["unknown", "succeeded"]
    assert StaffAction.objects.filter(action="refund_send", user__username="sam").count() == 1
    # The task's own retry, arriving late, finds nothing left to do.
    assert tasks.refund_send(payment.id, refund.idempotency_key) == "already succeeded"


def test_an_approved_refund_is_sent_once_finance_approves(
    support, finance, shop, settings, eager, django_capture_on_commit_callbacks
):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"
    order_id = shop.confirmed()
    payment = payment_for_order(order_id=order_id)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _refund(support, order_id, "60.00", "r3")
    assert callbacks == []  # nothing is sent before the approval
    approval = ApprovalRequest.objects.get()

    data = {"decision": "approve", "reason": "ok", "action_key": "a1"}
    with django_capture_on_commit_callbacks(execute=True):
        finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), data)
        finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), data)

    [refund] = refunds_for_payment(payment_id=payment.id)
    assert (refund.status, refund.amount) == ("succeeded", Decimal("60.00"))
    assert payment_for_order(order_id=order_id).status == "refunded"
    assert len(provider_refunds(shop.psp, payment.provider_charge_id)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_until_the_provider_answers(support, shop, psp, celery_worker_factory):
    order_id = shop.confirmed()
    payment = payment_for_order(order_id=order_id)
    worker = celery_worker_factory(
        env={"PSP_BASE_URL": psp.base_url, "PSP_API_KEY": psp.api_key, "PSP_READ_TIMEOUT": "1"}
    )
    shop.provider_down()

    _refund(support, order_id, "25.00", "r4")  # commits: the worker gets the task
    wait_for(
        lambda: "transient" in refund_attempts(payment.id),
        what="a first refund attempt the provider refused with a 5xx",
        on_timeout=worker.log,
    )
    assert refunds_for_payment(payment_id=payment.id)[0].status == "pending"
    shop.provider_recovers()
    wait_for(
        lambda: refunds_for_payment(payment_id=payment.id)[0].status == "succeeded",
        timeout=90,  # backoff with jitter on a busy machine: the retry may be a while
        what="the task's retry to succeed",
        on_timeout=worker.log,
    )
    [at_provider] = provider_refunds(psp, payment.provider_charge_id)
    assert at_provider["amount"] == 2500
    outcomes = refund_attempts(payment.id)
    assert set(outcomes[:-1]) == {"transient"} and outcomes[-1] == "succeeded"


def refund_attempts(payment_id: int) -> list[str]:
    return [a.outcome for a in provider_attempts_for_payment(payment_id=payment_id) if a.kind == "refund"]
