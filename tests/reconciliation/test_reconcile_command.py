"""`manage.py reconcile [--json]` (DESIGN §5)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def _call(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("reconcile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_json_prints_exactly_one_object_with_the_design_shape(psp):
    client = psp.client()
    for key in ("8:a", "8:b"):
        client.create_charge(
            amount=1999, currency="EUR", payment_method="pm_card_ok", reference="8", idempotency_key=key
        )

    out, _ = _call("--json")
    again, _ = _call("--json")

    payload = json.loads(out)  # the whole stdout is one JSON document
    assert set(payload) == {"opened", "resolved", "open"}
    assert (payload["opened"], payload["resolved"]) == (1, 0)
    (incident,) = payload["open"]
    assert set(incident) == {"type", "order_id", "charge_id", "amount_at_risk", "currency"}
    assert incident["type"] == "duplicate_charge"
    assert incident["order_id"] == 8
    assert incident["charge_id"].startswith("ch_")
    assert (incident["amount_at_risk"], incident["currency"]) == ("19.99", "EUR")
    assert json.loads(again)["opened"] == 0
    assert json.loads(again)["open"] == payload["open"]


def test_json_stays_parseable_when_the_provider_is_down(settings):
    settings.PSP_BASE_URL = "http://127.0.0.1:9"
    settings.PSP_CONNECT_TIMEOUT = 0.2

    out, err = _call("--json")

    assert json.loads(out) == {"opened": 0, "resolved": 0, "open": []}
    assert "provider unavailable" in err


def test_human_summary(provider_charge):
    provider_charge("12")
    provider_charge("12")

    out, _ = _call("--no-sync")

    assert "1 opened" in out
    assert "1 open incident(s)." in out
    assert "duplicate_charge" in out
    assert "order=12" in out
