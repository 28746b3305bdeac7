"""One checkout, followed through the logs and the trace: the API (a real gunicorn
web process), a real Celery worker process, the provider client inside it, and the
provider's webhook coming back — every line about the order carries the same ids,
and the spans of the three processes' work share one trace."""

from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User

from apitokens.services import api_token_issue
from monitoring.simulate.stack import Stack
from orders.selectors import order_get
from payments.choices import ProviderAttemptKind
from payments.selectors import payment_for_order, provider_attempts_for_payment, webhook_events_for_payment
from sagas.models import SagaRun
from sagas.selectors import saga_run_for_subject
from tests.inventory.factories import ProductFactory

from .conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REQUEST_ID = "req-checkout-corr-1"
KEY = "corr-key-1"


def _json_lines(text: str) -> list[dict]:
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass
    return lines


def logged_at(line: dict) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def _hex(value: str) -> str:
    return value.removeprefix("0x")


@pytest.fixture
def traced_stack(psp, tmp_path: Path):
    stack = Stack(
        workdir=tmp_path,
        webs=1,
        workers=1,
        env={
            "LOG_FORMAT": "json",
            "OTEL_ENABLED": "true",
            "OTEL_TRACES_FILE": str(tmp_path / "spans.jsonl"),
            "PSP_READ_TIMEOUT": "3",
        },
    )
    stack.start()
    psp.set_webhook_url(stack.web_urls[0] + "/api/v1/webhooks/psp/")
    try:
        yield stack
    finally:
        psp.set_webhook_url(None)
        stack.stop()


def test_one_checkout_carries_its_ids_from_the_api_through_the_worker_to_the_provider_and_back(
    traced_stack, tmp_path
):
    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=5)
    token = api_token_issue(user=User.objects.create_user("corr-shop"))

    placed = httpx.post(
        traced_stack.web_urls[0] + "/api/v1/orders/",
        headers={"Authorization": f"Token {token}", "Idempotency-Key": KEY, "X-Request-Id": REQUEST_ID},
        json={
            "customer_email": "ann@example.com",
            "currency": "EUR",
            "payment_method": "pm_card_ok",
            "lines": [{"sku": "MUG", "quantity": 1}],
        },
        timeout=30,
    )
    assert placed.status_code == 201, placed.text
    assert placed.headers["X-Request-Id"] == REQUEST_ID
    order_id = placed.json()["id"]
    wait_for(lambda: order_get(order_id=order_id).status == "confirmed", what="the confirmation")
    payment = payment_for_order(order_id=order_id)
    wait_for(lambda: webhook_events_for_payment(payment_id=payment.id), what="the provider's webhook")
    run = saga_run_for_subject(saga_type="checkout", subject_id=str(order_id))
    # the charge; the webhook adds a lookup (a webhook is a hint: the provider's record is asked)
    (attempt,) = [
        a
        for a in provider_attempts_for_payment(payment_id=payment.id)
        if a.kind == ProviderAttemptKind.CHARGE
    ]
    time.sleep(0.5)  # the last lines reach the files

    web = _json_lines(traced_stack.webs[0].log())
    worker = _json_lines(traced_stack.workers[0].log())

    # the API: the request's line and the order's, with the caller's request id and key
    api = [line for line in web if line.get("request_id") == REQUEST_ID]
    request_line = next(line for line in api if line.get("route") == "api/v1/orders/")
    assert request_line["status"] == 201 and request_line["order_id"] == order_id
    accepted = next(line for line in api if line["event"].startswith("order accepted"))
    assert accepted["idempotency_key"] == KEY and accepted["order_id"] == order_id

    # the worker: every saga step of this order, with the API request's ids carried through Celery
    about_order = [line for line in worker if line.get("order_id") == order_id]
    steps = [line for line in about_order if line["event"].startswith("saga step")]
    assert [line["step"] for line in steps] == ["reserve_stock", "charge_payment", "confirm_order"]
    for line in about_order:
        assert line["request_id"] == REQUEST_ID, line
        assert line["idempotency_key"] == KEY, line
        assert line["saga_run_id"] == run.id, line
    # ...and how long the poke waited before a worker took it (publish -> task start):
    # published on commit, before the request's own line, and before the step ran
    for line in steps:
        assert 0 <= line["task_queued_ms"] < 60_000, line
        assert line["task_sent_at"] <= logged_at(request_line), line
        assert line["task_sent_at"] <= logged_at(line), line

    # the provider client, inside the worker: its attempt id is the one the timeline stores
    (charge_line,) = [line for line in about_order if line["event"].startswith("provider charge")]
    assert charge_line["provider_attempt_id"] == attempt.attempt_id
    assert attempt.attempt_id.startswith("pa_")

    # ...and back: the provider's webhook names the order and its event id
    (hook,) = [line for line in web if line["event"].startswith("provider webhook charge.succeeded")]
    assert hook["order_id"] == order_id
    assert hook["webhook_event_id"].startswith("evt_")

    # the trace: the API request, the Celery task and the provider call are one trace
    spans = _json_lines((tmp_path / "spans.jsonl").read_text())
    server = next(s for s in spans if s["kind"] == "SpanKind.SERVER" and "api/v1/orders" in s["name"])
    trace_id = _hex(server["context"]["trace_id"])
    in_trace = [s for s in spans if _hex(s["context"]["trace_id"]) == trace_id]
    names = {s["name"] for s in in_trace}
    # the run's first pass ran in the burst's sagas.start_fresh, which this request
    # queued (its poke carried the trace); the run keeps the trace too, so a run started
    # by another request's task runs in a span of its own request's trace instead
    # (tests/sagas/test_trace_origin.py)
    assert "run/sagas.start_fresh" in names, names
    origin = SagaRun.objects.values_list("origin", flat=True).get(pk=run.id)
    assert origin["traceparent"].split("-")[1] == trace_id
    assert any(
        s["kind"] == "SpanKind.CLIENT" and "/v1/charges" in json.dumps(s["attributes"]) for s in in_trace
    )
    assert any(s["attributes"].get("db.system") == "postgresql" for s in in_trace)
    # and the log lines point at it
    assert request_line["trace_id"] == trace_id
    assert charge_line["trace_id"] == trace_id
