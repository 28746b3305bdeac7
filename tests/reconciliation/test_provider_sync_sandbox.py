"""The provider-records sync and settlement import against the real sandbox process."""

import datetime
from decimal import Decimal

import pytest

from reconciliation.models import ProviderCharge, ProviderRefund, ProviderSettlement
from reconciliation.services import provider_records_sync, provider_settlement_import

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _charge(client, reference: str, key: str, amount: int = 2500, method: str = "pm_card_ok"):
    result = client.create_charge(
        amount=amount, currency="EUR", payment_method=method, reference=reference, idempotency_key=key
    )
    assert result.charge is not None, result
    return result.charge


def test_sync_pulls_charges_and_refunds_from_the_sandbox_idempotently(psp):
    client = psp.client()
    ok = _charge(client, "101", "k-101", amount=1250)
    declined = _charge(client, "102", "k-102", method="pm_card_declined")
    refund = client.create_refund(charge_id=ok.id, amount=250, idempotency_key="r-101").refund

    first = provider_records_sync()  # ProviderClient.from_settings(): the psp fixture's settings
    second = provider_records_sync()

    assert (first.charges.created, first.refunds.created) == (2, 1)
    assert (second.charges.created, second.refunds.created) == (0, 0)
    stored = ProviderCharge.objects.get(provider_id=ok.id)
    assert (stored.reference, stored.amount, stored.currency, stored.status) == (
        "101",
        Decimal("12.50"),
        "EUR",
        "succeeded",
    )
    assert ProviderCharge.objects.get(provider_id=declined.id).status == "failed"
    stored_refund = ProviderRefund.objects.get()
    assert (stored_refund.provider_id, stored_refund.charge_provider_id) == (refund.id, ok.id)
    assert stored_refund.amount == Decimal("2.50")


def test_settlement_import_stores_the_day_per_currency(psp):
    client = psp.client()
    a = _charge(client, "201", "k-201", amount=1000)
    _charge(client, "202", "k-202", amount=3000)
    client.create_refund(charge_id=a.id, amount=400, idempotency_key="r-201")
    today = datetime.datetime.now(datetime.UTC).date()

    lines = provider_settlement_import(date=today, client=client)
    provider_settlement_import(date=today, client=client)  # importing again replaces, never adds

    assert len(lines) == 1
    row = ProviderSettlement.objects.get()
    assert (row.date, row.currency) == (today, "EUR")
    assert (row.charges_count, row.charges) == (2, Decimal("40.00"))
    assert (row.refunds_count, row.refunds) == (1, Decimal("4.00"))
    assert row.net == Decimal("36.00")
