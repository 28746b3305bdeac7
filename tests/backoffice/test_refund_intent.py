"""A refund is a durable intent (issue 14, "nothing fails silently"): whatever goes
wrong after it was asked for, it ends refunded (exactly once at the provider) or in an
incident a person sees — never silently pending.

Real processes: the sandbox provider, Celery workers (with beat running the sweeper),
PostgreSQL and Redis.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice import tasks
from payments.models import Refund
from payments.selectors import payment_for_order, refunds_for_payment
from payments.services import refunds_resume
from reconciliation.detectors import detector_get
from reconciliation.selectors import incidents_list
from reconciliation.services import reconcile_run
from tests.api_webhooks.conftest import deliver, event_about
from tests.fixtures.worker import purge_default_queue

from .conftest import wait_for


def _refund(client, order_id, amount, key):
    data = {"op": "refund", "amount": amount, "reason": "damaged", "action_key": key, "confirm": "1"}
    return client.post(reverse("backoffice:order-action", args=[order_id]), data, follow=True)


def _at_provider(psp, charge_id):
    return psp.request("GET", "/v1/refunds", params={"charge": charge_id}).json()["data"]


def _only_refund(order_id):
    [refund] = refunds_for_payment(payment_id=payment_for_order(order_id=order_id).id)
    return refund


def _worker_env(psp, **extra):
    return {
        "PSP_BASE_URL": psp.base_url,
        "PSP_API_KEY": psp.api_key,
        "PSP_READ_TIMEOUT": "10",
        "PAYMENTS_REFUND_RESUME_AFTER": "0",
        "PAYMENTS_REFUND_SWEEP_INTERVAL": "1",
        "RECONCILE_INTERVAL": "3600",
        **extra,
    }


def _refund_pending_incidents(order_id):
    states = ["open", "acknowledged", "resolved"]
    return incidents_list(order_id=order_id, types=["refund_pending"], states=states)


@pytest.mark.django_db(transaction=True)
def test_a_refund_whose_message_was_dropped_is_resumed_by_the_beat_sweeper(
    support, shop, psp, celery_worker_factory
):
    order_id = shop.confirmed(quantity=1)
    payment = payment_for_order(order_id=order_id)
    _refund(support, order_id, "20.00", "drop-1")
    purge_default_queue()  # the after-commit message is lost (a broker failover)
    assert _only_refund(order_id).status == "pending"

    worker = celery_worker_factory(beat=True, env=_worker_env(psp))

    wait_for(lambda: _only_refund(order_id).status == "succeeded", what="the sweeper", on_timeout=worker.log)
    [at_provider] = _at_provider(psp, payment.provider_charge_id)
    assert (at_provider["id"], at_provider["amount"]) == (_only_refund(order_id).provider_refund_id, 2000)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_leaves_a_refund_the_sweeper_settles_once(
    support, shop, psp, celery_worker_factory
):
    order_id = shop.confirmed(quantity=1)
    payment = payment_for_order(order_id=order_id)
    # The provider records the refund, then holds the answer: the worker is killed waiting.
    psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=30)
    first = celery_worker_factory(env=_worker_env(psp, PSP_READ_TIMEOUT="60"))
    _refund(support, order_id, "30.00", "kill-1")
    wait_for(lambda: len(_at_provider(psp, payment.provider_charge_id)) == 1, what="the provider to refund")
    first.kill()
    assert _only_refund(order_id).status == "pending"
    psp.clear_faults()

    second = celery_worker_factory("w2", beat=True, env=_worker_env(psp))

    wait_for(lambda: _only_refund(order_id).status == "succeeded", what="the sweeper", on_timeout=second.log)
    [at_provider] = _at_provider(psp, payment.provider_charge_id)  # once, not twice
    assert (at_provider["id"], at_provider["amount"]) == (_only_refund(order_id).provider_refund_id, 3000)


@pytest.mark.django_db
def test_a_provider_down_for_a_while_opens_an_incident_past_the_sla_then_the_refund_heals(
    support, shop, psp, settings, django_capture_on_commit_callbacks
):
    settings.RECONCILIATION = {**settings.RECONCILIATION, "REFUND_PENDING_SLA_SECONDS": 600}
    order_id = shop.confirmed(quantity=1)  # a confirmed order: a partial refund of it
    shop.provider_down()
    with django_capture_on_commit_callbacks(execute=False):
        _refund(support, order_id, "10.00", "down-1")
    refund = _only_refund(order_id)

    resumed = refunds_resume(older_than=0)  # the sweeper, while the provider is down

    assert [(r.refund_id, r.status) for r in resumed] == [(refund.id, "pending")]
    reconcile_run(detectors=[detector_get("refund_pending")], sync=False)
    assert _refund_pending_incidents(order_id) == []  # within its SLA: no incident yet
    Refund.objects.filter(pk=refund.id).update(created_at=timezone.now() - timedelta(seconds=601))
    reconcile_run(detectors=[detector_get("refund_pending")], sync=False)
    [incident] = _refund_pending_incidents(order_id)
    assert (incident.state, Decimal(incident.amount_at_risk)) == ("open", Decimal("10.00"))

    shop.provider_recovers()
    refunds_resume(older_than=0)
    reconcile_run(detectors=[detector_get("refund_pending")], sync=False)

    assert _only_refund(order_id).status == "succeeded"
    [healed] = _refund_pending_incidents(order_id)
    assert healed.state == "resolved"


@pytest.mark.django_db
def test_a_provider_that_answers_after_the_retries_ran_out_settles_the_refund_by_webhook(
    support, shop, psp, django_capture_on_commit_callbacks
):
    order_id = shop.confirmed(quantity=1)
    payment = payment_for_order(order_id=order_id)
    with django_capture_on_commit_callbacks(execute=False):
        _refund(support, order_id, "15.00", "late-1")
    refund = _only_refund(order_id)
    # The provider refunds but answers 500: the task's last retry gives up.
    psp.set_faults(error_after_commit_rate=1.0)
    with pytest.raises(tasks.RefundStillPending):
        tasks.refund_send(payment.id, refund.idempotency_key)
    psp.clear_faults()
    [at_provider] = _at_provider(psp, payment.provider_charge_id)

    # Its refund.succeeded webhook arrives: a hint; the provider's replay for the key settles it.
    response = deliver(event_about(at_provider, event_type="refund.succeeded"))

    assert (response.status_code, response.json()["outcome"]) == (200, "applied")
    settled = _only_refund(order_id)
    assert (settled.status, settled.provider_refund_id) == ("succeeded", at_provider["id"])
    assert len(_at_provider(psp, payment.provider_charge_id)) == 1


@pytest.mark.django_db
def test_a_forged_refund_webhook_settles_nothing_the_provider_did_not_do(
    support, shop, psp, django_capture_on_commit_callbacks
):
    order_id = shop.confirmed(quantity=1)
    payment = payment_for_order(order_id=order_id)
    with django_capture_on_commit_callbacks(execute=False):
        _refund(support, order_id, "15.00", "forged-1")
    shop.provider_down()  # the provider cannot have refunded

    forged = {"id": "re_forged", "charge": payment.provider_charge_id, "amount": 1500, "status": "succeeded"}
    response = deliver(event_about(forged, event_type="refund.succeeded"))

    assert response.status_code == 503  # the provider could not confirm: deliver again later
    assert _only_refund(order_id).status == "pending"
    shop.provider_recovers()
    assert _only_refund(order_id).provider_refund_id is None
