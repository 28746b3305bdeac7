"""`manage.py simulate`, run as an operator runs it (a subprocess, its exit status).

- A short chaos run — a few hundred orders through the API, provider faults (errors,
  answers lost after the charge), a worker SIGKILLed every few seconds, the broker
  restarted once (its queued pokes lost) — keeps every invariant of DESIGN §6: the
  suite fails on a violation.
- The checks can fail: a charge made behind Concord's back at the provider, stock
  changed by SQL, an order cancelled by SQL while its money stays — each makes
  simulate exit 1 and name the invariant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from apitokens.services import api_token_issue
from monitoring.management.commands.simulate import parse_faults
from monitoring.simulate.stack import ROOT, Stack, database_url
from orders.selectors import order_get
from sagas.executor import advance_run
from sagas.selectors import saga_run_for_subject
from tests.inventory.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Short timings for the processes simulate starts, so a killed worker's runs come
# back within seconds (lease = step timeout + margin; the sweeper every second).
FAST = {
    "SAGA_LEASE_MARGIN": "1",
    "SAGA_SWEEP_INTERVAL": "1",
    "SAGA_SWEEP_GRACE": "1",
    "SAGA_SWEEP_REQUEUE_AFTER": "2",
    "PSP_CONNECT_TIMEOUT": "1",
    "PSP_READ_TIMEOUT": "1.5",
}


def simulate(psp, *args: str, timeout: float = 300) -> tuple[int, dict, str]:
    env = {
        **os.environ,
        **FAST,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PSP_BASE_URL": psp.base_url,
        "PSP_API_KEY": psp.api_key,
        "PSP_WEBHOOK_SECRET": psp.webhook_secret,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "simulate", "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"no report (exit {result.returncode}):\n{result.stderr[-5000:]}") from None
    return result.returncode, report, result.stderr


def violations(report: dict) -> dict[str, list[str]]:
    return {c["name"]: c["violations"] for c in report["invariants"] if c["status"] == "violated"}


@pytest.mark.slow
def test_a_short_chaos_run_keeps_every_invariant(psp):
    code, report, log = simulate(
        psp,
        "--spawn",
        "--orders", "300",
        "--clients", "8",
        "--workers", "2",
        "--faults", "error=0.05,error_after_commit=0.05,timeout_after_commit=0.05,timeout_seconds=3,seed=7",
        "--kill-worker-every", "6s",
        "--restart-broker",
        "--seed", "11",
        "--settle-timeout", "120s",
    )  # fmt: skip

    assert code == 0 and report["ok"], (violations(report), log[-4000:])
    assert report["traffic"]["orders_accepted"] == 300
    assert report["orders"]["total"] == 300
    assert report["settle"]["settled"]
    assert report["traffic"]["process_faults"]["worker_kills"] >= 1
    assert report["traffic"]["process_faults"]["broker_restarts"] == 1
    states = report["orders"]["by_state"]
    assert states["confirmed"]["count"] > 150
    assert {"payment_declined", "cancelled_by_client"} <= set(states["cancelled"]["reasons"])
    # the faults were felt (retried steps) and the replays and key reuses were made
    assert (
        report["engine"]["by_outcome"].get("retry", 0) + report["engine"]["by_outcome"].get("timeout", 0) > 0
    )
    assert report["traffic"]["requests"]["replays_sent"] > 0
    assert report["traffic"]["requests"]["http_422"] == report["traffic"]["requests"]["keys_reused"]
    assert report["engine"]["steps_done_twice"] == []
    assert {c["name"] for c in report["invariants"] if c["status"] == "ok"} >= {
        "captured_charges_belong_to_confirmed_orders",
        "charged_at_most_once",
        "captured_amount_matches_order",
        "stock_conserved",
        "replays_identical",
        "every_saga_ended_or_is_an_incident",
        "every_key_one_order",
        "state_changes_audited",
        "ledger_balanced",
    }


@pytest.mark.slow
def test_simulate_drives_a_stack_it_did_not_start_through_its_url(psp, tmp_path):
    # given: a running stack (as `make run` would be), not simulate's own
    stack = Stack(workdir=tmp_path, webs=1, workers=1, env=FAST)
    stack.start()
    try:
        # when
        code, report, log = simulate(
            psp, "--url", stack.web_urls[0], "--orders", "30", "--clients", "3", "--faults", "decline=0.2"
        )
        # then: the same report, and its processes were left alone
        assert code == 0 and report["ok"], (violations(report), log[-3000:])
        assert report["traffic"]["orders_accepted"] == 30
        assert report["traffic"]["by_web"] == {stack.web_urls[0]: report["traffic"]["requests"]["http_201"]}
        assert report["traffic"]["process_faults"] == {"worker_kills": 0, "broker_restarts": 0}
        assert report["orders"]["by_state"]["cancelled"]["reasons"].get("payment_declined", 0) > 0
        assert stack.workers[0].alive and stack.workers[0].starts == 1
        assert psp.faults()["decline_rate"] == 0  # the outage ended with the traffic
    finally:
        stack.stop()


# --- the checks can fail ------------------------------------------------------------------


def _checkout_through_the_api(psp, count: int) -> list[int]:
    """Orders placed through the API (so each has its key), checked out in this process."""
    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=20)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=User.objects.create_user('shop'))}")
    ids = []
    for n in range(count):
        body = {
            "customer_email": "ann@example.com",
            "currency": "EUR",
            "payment_method": "pm_card_ok",
            "lines": [{"sku": "MUG", "quantity": 1}],
        }
        placed = api.post("/api/v1/orders/", body, format="json", headers={"Idempotency-Key": f"plant-{n}"})
        assert placed.status_code == 201
        ids.append(placed.json()["id"])
    for order_id in ids:
        run_id = saga_run_for_subject(saga_type="checkout", subject_id=str(order_id)).id
        deadline = time.monotonic() + 20
        while order_get(order_id=order_id).status == "pending" and time.monotonic() < deadline:
            advance_run(run_id, worker_id="test")
        assert order_get(order_id=order_id).status == "confirmed"
    return ids


def test_simulate_names_a_charge_made_behind_the_systems_back(psp):
    first, _ = _checkout_through_the_api(psp, 2)
    code, report, _ = simulate(psp, "--orders", "0", "--since", "10m")
    assert code == 0 and report["ok"], violations(report)
    assert report["orders"]["total"] == 2

    # when: someone charges the first order again, directly at the provider
    charge = psp.request(
        "POST",
        "/v1/charges",
        json={"amount": 1250, "currency": "EUR", "payment_method": "pm_card_ok", "reference": str(first)},
        headers={"Idempotency-Key": "behind-the-back"},
    )
    assert charge.status_code == 200

    code, report, _ = simulate(psp, "--orders", "0", "--since", "10m")

    assert code == 1 and not report["ok"]
    found = violations(report)
    (message,) = found["charged_at_most_once"]
    assert f"order {first} " in message and charge.json()["id"] in message and "charged 2 times" in message


def test_simulate_names_stock_changed_by_sql_and_an_order_cancelled_by_sql(psp):
    _, second = _checkout_through_the_api(psp, 2)

    # when: a unit appears on the shelf without a journal row, and an order is
    # cancelled behind the services' back (its charge stays, no audit row says so)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE inventory_stocklevel SET on_hand = on_hand + 1 WHERE sku = 'MUG'")
        cursor.execute(
            "UPDATE orders_order SET status = 'cancelled', failure_reason = 'cancelled_by_staff' WHERE id = %s",
            [second],
        )

    code, report, _ = simulate(psp, "--orders", "0", "--since", "10m")

    assert code == 1
    found = violations(report)
    assert any("sku MUG: on_hand_vs_movements" in v for v in found["stock_conserved"]), found
    assert any(
        f"order {second} is cancelled, but the provider keeps 1250" in v
        for v in found["captured_charges_belong_to_confirmed_orders"]
    ), found
    assert any(
        f"order {second} is cancelled without an audit row" in v for v in found["state_changes_audited"]
    ), found


def test_process_faults_need_processes_simulate_started_itself():
    with pytest.raises(CommandError, match="--spawn"):
        call_command("simulate", "--kill-worker-every", "5s")
    with pytest.raises(CommandError, match="--spawn"):
        call_command("simulate", "--restart-broker")


def test_fault_specs_are_validated():
    assert parse_faults("timeout_after_commit=0.1, error_rate=0.05,latency_ms=20") == {
        "timeout_after_commit": 0.1,
        "error": 0.05,
        "latency_ms": 20,
    }
    for bad in ("explode=1", "error", "error=lots", "error=1.5", "latency_ms=-1"):
        with pytest.raises(CommandError):
            parse_faults(bad)
