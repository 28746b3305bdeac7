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
def test_json_prints_exactly_one_object_with_the_design_shape(psp, shop):
    client = psp.client()
    order_id, _ = shop.checkout(client)
    shop.charge(client, order_id, "8:b", amount_minor=1999)  # a second capture for the order

    out, _ = _call("--json")
    again, _ = _call("--json")

    payload = json.loads(out)  # the whole stdout is one JSON document
    assert set(payload) == {"opened", "resolved", "open"}
    # The extra capture, and the provider_clearing account that no longer matches it.
    assert (payload["opened"], payload["resolved"]) == (2, 0)
    by_type = {i["type"]: i for i in payload["open"]}
    assert set(by_type) == {"duplicate_charge", "clearing_mismatch"}
    incident = by_type["duplicate_charge"]
    assert set(incident) == {"type", "order_id", "charge_id", "amount_at_risk", "currency"}
    assert incident["order_id"] == order_id
    assert incident["charge_id"].startswith("ch_")
    assert (incident["amount_at_risk"], incident["currency"]) == ("19.99", "EUR")
    assert by_type["clearing_mismatch"]["amount_at_risk"] == "19.99"
    assert json.loads(again)["opened"] == 0
    assert json.loads(again)["open"] == payload["open"]


def test_json_stays_parseable_when_the_provider_is_down(settings):
    settings.PSP_BASE_URL = "http://127.0.0.1:9"
    settings.PSP_CONNECT_TIMEOUT = 0.2

    out, err = _call("--json")

    assert json.loads(out) == {"opened": 0, "resolved": 0, "open": []}
    assert "provider unavailable" in err


def test_human_summary(provider_charge):
    provider_charge("12")  # a capture for an order Concord never had

    out, _ = _call("--no-sync")

    assert "2 opened" in out
    assert "2 open incident(s)." in out
    assert "charge_without_order" in out
    assert "clearing_mismatch" in out
