"""GET /metrics: every family of the issue is exposed, the counts move with a real
checkout (API in this process, the saga on a real worker process, the sandbox
provider), the state gauges follow the database and the broker, and the endpoint
is closed to anonymous callers in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apitokens.services import api_token_issue
from monitoring.simulate.stack import ROOT, database_url, free_port
from orders.selectors import order_get
from orders.services import order_place
from payments.webhook_signing import sign_payload
from reconciliation.services import reconcile_run
from sagas.models import SagaRun
from sagas.selectors import saga_run_for_subject, saga_step_log
from sagas.tasks import advance
from tests.inventory.factories import ProductFactory

from .conftest import scrape, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# Every family the issue names (and a few more), as exposed on /metrics.
PROCESS_FAMILIES = {
    "concord_http_requests_total",
    "concord_http_request_duration_seconds_bucket",
    "concord_orders_accepted_total",
    "concord_orders_confirmed_total",
    "concord_orders_cancelled_total",
    "concord_order_confirmation_seconds_bucket",
    "concord_saga_step_duration_seconds_bucket",
    "concord_saga_step_retries_total",
    "concord_saga_runs_finished_total",
    "concord_saga_leases_lost_total",
    "concord_provider_calls_total",
    "concord_provider_call_duration_seconds_bucket",
    "concord_idempotency_requests_total",
    "concord_provider_webhook_events_total",
    "concord_reconciliation_pass_duration_seconds_bucket",
    "concord_incidents_opened_total",
    "concord_incidents_auto_resolved_total",
    "concord_celery_tasks_total",
    "concord_celery_task_duration_seconds_bucket",
    "concord_celery_task_queued_seconds_bucket",
}
STATE_FAMILIES = {
    "concord_incidents_open",
    "concord_money_at_risk",
    "concord_money_at_risk_overdue",
    "concord_reconciliation_last_success_timestamp_seconds",
    "concord_reconciliation_lag_seconds",
    "concord_saga_runs_active",
    "concord_saga_runs_due",
    "concord_saga_oldest_due_seconds",
    "concord_saga_leases_expired",
    "concord_sagas_stuck",
    "concord_broker_queue_depth",
    "concord_broker_oldest_message_age_seconds",
    "concord_state_up",
    "concord_slo_target",
    "concord_state_collect_duration_seconds",
}
ORDERS = "/api/v1/orders/"


def _api_client() -> APIClient:
    user = User.objects.create_user(f"metrics-shop-{time.monotonic_ns()}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=user)}")
    return client


def _body(payment_method: str = "pm_card_ok") -> dict:
    return {
        "customer_email": "ann@example.com",
        "currency": "EUR",
        "payment_method": payment_method,
        "lines": [{"sku": "MUG", "quantity": 1}],
    }


def _provider_charge(psp, **body) -> dict:
    response = psp.request(
        "POST", "/v1/charges", json=body, headers={"Idempotency-Key": f"behind-{time.time_ns()}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_after_a_checkout_every_family_is_exposed_and_the_counts_moved(psp, celery_worker_factory, settings):
    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=10)
    settings.SLO = {**settings.SLO, "MONEY_AT_RISK_MAX_AGE_SECONDS": 0}  # every live incident is overdue
    api = _api_client()
    before = scrape()
    # beat too: a retry is due later, and only the sweeper pokes it then
    celery_worker_factory(
        env={"PSP_BASE_URL": psp.base_url, "PSP_API_KEY": psp.api_key, "PSP_READ_TIMEOUT": "3"}, beat=True
    )

    # an order whose first charge attempt meets a provider error (a retry), then succeeds
    psp.set_faults(error_rate=1.0)
    placed = api.post(ORDERS, _body(), format="json", headers={"Idempotency-Key": "m-1"})
    assert placed.status_code == 201
    order_id = placed.json()["id"]
    wait_for(
        lambda: any(
            s.outcome == "retry"
            for s in saga_step_log(
                run_id=saga_run_for_subject(saga_type="checkout", subject_id=str(order_id)).id
            )
        ),
        what="a retried charge",
    )
    psp.clear_faults()
    # the same request again (a replay), the key for another body (422), no key (400)
    replay = api.post(ORDERS, _body(), format="json", headers={"Idempotency-Key": "m-1"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (
        api.post(
            ORDERS, _body("pm_card_declined"), format="json", headers={"Idempotency-Key": "m-1"}
        ).status_code
        == 422
    )
    assert api.post(ORDERS, _body(), format="json").status_code == 400
    declined = api.post(ORDERS, _body("pm_card_declined"), format="json", headers={"Idempotency-Key": "m-2"})
    declined_id = declined.json()["id"]
    wait_for(lambda: order_get(order_id=order_id).status == "confirmed", what="the confirmation")
    wait_for(
        lambda: order_get(order_id=declined_id).status == "cancelled",
        what="the declined order's cancellation",
    )

    # a provider webhook about the order, and one with a forged signature
    charge = {
        "id": "ch_x",
        "status": "succeeded",
        "amount": 1250,
        "currency": "EUR",
        "reference": str(order_id),
    }
    event = json.dumps(
        {"id": "evt_m1", "type": "charge.succeeded", "created": 1, "data": {"object": charge}}
    ).encode()
    for signature in (
        sign_payload(event, psp.webhook_secret, int(time.time())),
        f"t={int(time.time())},v1={'ab' * 32}",
    ):
        Client().generic(
            "POST",
            "/api/v1/webhooks/psp/",
            event,
            content_type="application/json",
            headers={"PSP-Signature": signature},
        )

    # a charge made behind Concord's back (an incident), then refunded there (it heals)
    extra = _provider_charge(
        psp, amount=1250, currency="EUR", payment_method="pm_card_ok", reference=str(order_id)
    )
    reconcile_run()
    during = scrape()
    refund = psp.request(
        "POST",
        "/v1/refunds",
        json={"charge": extra["id"], "amount": 1250},
        headers={"Idempotency-Key": "behind-refund"},
    )
    assert refund.status_code == 200, refund.text
    reconcile_run()
    after = scrape()

    assert PROCESS_FAMILIES | STATE_FAMILIES <= {name for name, _ in after.samples}, (
        PROCESS_FAMILIES | STATE_FAMILIES
    ) - {name for name, _ in after.samples}

    def moved(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    # requests by route and status (3 x 201: two orders and the replay)
    assert moved("concord_http_requests_total", method="POST", route="api/v1/orders/", status="201") == 3
    assert moved("concord_http_requests_total", route="api/v1/orders/", status="422") == 1
    assert moved("concord_http_request_duration_seconds_count", route="api/v1/orders/") == 5
    # orders accepted / confirmed / cancelled by reason, confirmation time
    assert moved("concord_orders_accepted_total", currency="EUR") == 2
    assert moved("concord_orders_confirmed_total") == 1
    assert moved("concord_orders_cancelled_total", reason="payment_declined") == 1
    assert moved("concord_order_confirmation_seconds_count") == 1
    # saga steps by step and outcome, retries by error class, runs at rest (from the worker)
    assert (
        moved(
            "concord_saga_step_duration_seconds_count", saga="checkout", step="charge_payment", outcome="done"
        )
        == 1
    )
    assert (
        moved(
            "concord_saga_step_duration_seconds_count", saga="checkout", step="charge_payment", outcome="fail"
        )
        == 1
    )
    assert (
        moved("concord_saga_step_retries_total", saga="checkout", step="charge_payment", error_class="retry")
        >= 1
    )
    assert moved("concord_saga_runs_finished_total", saga="checkout", status="completed") == 1
    assert moved("concord_saga_runs_finished_total", saga="checkout", status="compensated") == 1
    assert after.value("concord_saga_leases_lost_total", saga="checkout") == before.value(
        "concord_saga_leases_lost_total", saga="checkout"
    )
    # provider calls by operation and outcome (the worker's charges, reconciliation's reads)
    assert moved("concord_provider_calls_total", operation="charge", outcome="transient") >= 1
    assert moved("concord_provider_calls_total", operation="charge", outcome="succeeded") == 1
    assert moved("concord_provider_calls_total", operation="charge", outcome="declined") == 1
    assert moved("concord_provider_calls_total", operation="list_charges", outcome="ok") >= 2
    assert moved("concord_provider_call_duration_seconds_count", operation="charge") >= 3
    # idempotent replays and conflicts
    assert moved("concord_idempotency_requests_total", result="first") == 2
    assert moved("concord_idempotency_requests_total", result="replayed") == 1
    assert moved("concord_idempotency_requests_total", result="key_reused") == 1
    assert moved("concord_idempotency_requests_total", result="key_required") == 1
    # webhooks by outcome
    assert moved("concord_provider_webhook_events_total") == 2
    assert moved("concord_provider_webhook_events_total", outcome="invalid_signature") == 1
    # reconciliation passes, incidents opened and healed
    assert moved("concord_reconciliation_pass_duration_seconds_count") == 2
    assert moved("concord_incidents_opened_total", type="duplicate_charge") == 1
    assert moved("concord_incidents_auto_resolved_total", type="duplicate_charge") == 1
    # Celery task metrics from the worker process: the run's first pass in the burst's
    # sagas.start_fresh, the retry the sweeper re-enqueued in a sagas.advance
    for task in ("sagas.start_fresh", "sagas.advance"):
        assert moved("concord_celery_tasks_total", task=task, state="success") >= 1
        assert moved("concord_celery_task_duration_seconds_count", task=task) >= 1
        assert moved("concord_celery_task_queued_seconds_count", task=task) >= 1

    # state: incidents open and money at risk while the duplicate was live, none after
    assert during.total("concord_incidents_open", type="duplicate_charge") == 1
    assert during.value("concord_money_at_risk", currency="EUR") == 12.5
    assert during.value("concord_money_at_risk_overdue", currency="EUR") == 12.5
    assert after.total("concord_incidents_open", type="duplicate_charge") == 0
    assert after.value("concord_money_at_risk", currency="EUR") == 0
    assert 0 <= after.value("concord_reconciliation_lag_seconds") < 60
    assert after.value("concord_state_up", source="database") == 1
    assert after.value("concord_state_up", source="broker") == 1


def test_the_queue_gauges_follow_the_saga_table_and_the_broker(settings, monkeypatch):
    # given: three orders accepted while no worker runs (their poke waits in the broker:
    # one sagas.start_fresh for the burst, coalesced by a flag that outlives it)
    from sagas import tasks as saga_tasks
    from tests.fixtures.worker import purge_default_queue

    monkeypatch.setattr(saga_tasks, "FRESH_POKE_SECONDS", 60.0)
    purge_default_queue()
    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=10)
    ids = []
    for _ in range(3):
        with transaction.atomic():
            ids.append(
                order_place(
                    client_id=1,
                    customer_email="a@example.com",
                    currency="EUR",
                    payment_method="pm_card_ok",
                    lines=[("MUG", 1)],
                ).id
            )
    runs = [saga_run_for_subject(saga_type="checkout", subject_id=str(i)).id for i in ids]
    # one run failed (a person must act), one held by a worker that died an hour ago
    SagaRun.objects.filter(pk=runs[1]).update(status="failed", next_attempt_at=None)
    SagaRun.objects.filter(pk=runs[2]).update(
        lease_owner="dead@host/1", lease_expires_at=timezone.now() - timedelta(hours=1)
    )
    time.sleep(1.1)

    metrics = scrape()

    assert metrics.value("concord_saga_runs_active", saga="checkout", status="running") == 2
    assert metrics.value("concord_saga_runs_due", saga="checkout") == 2
    assert metrics.value("concord_saga_oldest_due_seconds", saga="checkout") >= 1
    assert metrics.value("concord_sagas_stuck", saga="checkout", reason="failed") == 1
    assert metrics.value("concord_saga_leases_expired", saga="checkout") == 1
    # the burst's pokes coalesce into one message (sagas.tasks.poke_fresh), then a
    # message sent behind it counts too
    assert metrics.value("concord_broker_queue_depth", queue="celery") == 1
    advance.delay(runs[0])
    assert scrape().value("concord_broker_queue_depth", queue="celery") == 2
    assert 1 <= metrics.value("concord_broker_oldest_message_age_seconds", queue="celery") < 60
    purge_default_queue()


def test_an_unreachable_broker_is_a_gauge_not_an_error(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    metrics = scrape()

    assert metrics.value("concord_state_up", source="broker") == 0
    assert metrics.value("concord_state_up", source="database") == 1
    assert "concord_broker_queue_depth" not in metrics.names()


def test_with_a_token_only_its_bearer_may_read(settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Token s3cret-token"}).status_code == 401
    assert scrape(Authorization="Bearer s3cret-token").value("concord_state_up", source="database") == 1


def test_required_but_unset_token_refuses_everyone(settings):
    settings.METRICS_REQUIRE_TOKEN = True
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 403
    assert b"concord_" not in response.content


def _production_get(headers: dict[str, str], **env: str) -> tuple[int, str]:
    """GET /metrics in a process running config.settings.production as deployed."""
    code = (
        "import django, json; django.setup()\n"
        "from django.test import Client\n"
        f"r = Client().get('/metrics', headers={headers!r}, secure=True)\n"
        "print(json.dumps([r.status_code, r.content.decode()]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": "a-production-secret-that-is-long-enough-0123456789",
            "DATABASE_URL": database_url(),
            "ALLOWED_HOSTS": "testserver",
            # Production refuses the provider's development defaults (docs/security.md).
            "PSP_BASE_URL": "https://psp.example.com",
            "PSP_API_KEY": "sk_live_51HxQ2mT9vLw3xK7pNa1YcE5sUfH8dJ4gB6oRiVtMzWnQeyP",
            "PSP_WEBHOOK_SECRET": "whsec_Kd83mQ0vZx7LpR2tNw9YcE4sUfH1aJ6gB5oXiVyMz",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status, body = json.loads(result.stdout.strip().splitlines()[-1])
    return status, body


def test_production_settings_refuse_an_anonymous_scrape():
    status, body = _production_get({})
    assert status == 403 and "METRICS_TOKEN" in body
    status, _ = _production_get({}, METRICS_TOKEN="prod-token-123")
    assert status == 401
    status, body = _production_get({"Authorization": "Bearer prod-token-123"}, METRICS_TOKEN="prod-token-123")
    assert status == 200 and "concord_state_up" in body


def test_a_worker_only_host_serves_its_processes_metrics_on_an_internal_port(celery_worker_factory):
    port = free_port()
    celery_worker_factory(env={"WORKER_METRICS_PORT": str(port), "WORKER_METRICS_ADDR": "127.0.0.1"})

    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)

    assert response.status_code == 200
    # the process families of this host (the saga types' lost-lease series exist from the start) ...
    assert 'concord_saga_leases_lost_total{saga="checkout"}' in response.text
    # ... and not the database gauges, which the web's /metrics serves
    assert "concord_incidents_open{" not in response.text and "concord_state_up" not in response.text
