"""Fixtures of the read-model tests: the order-saga fixtures (a shop, placing
orders, fast saga settings) and helpers that build a day of business in-process."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from orders.services import order_request_cancel
from outbox.relay import relay_pass
from reconciliation.services import Finding, incident_dismiss, incidents_auto_resolve, incidents_report
from tests.checkout.conftest import (  # noqa: F401 - fixtures
    _fast_saga_settings,
    advance_until_rest,
    place,
    saga_policies,
    shop,
)


@pytest.fixture
def big_shop(transactional_db):
    from tests.inventory.factories import ProductFactory

    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=500)
    ProductFactory(sku="TEE", price=Decimal("20.00"), on_hand=500)
    return {"MUG": 500, "TEE": 500}


def cancel(order_id: int) -> None:
    with transaction.atomic():
        order_request_cancel(order_id=order_id, reason="changed my mind")


def finding(order_id: int, amount: str, kind: str = "duplicate_charge") -> Finding:
    return Finding(
        type=kind,
        fingerprint=f"{kind}:test:{order_id}",
        severity="high",
        order_id=order_id,
        amount_at_risk=Decimal(amount),
        currency="EUR",
    )


def incidents_story(order_ids: list[int], staff) -> None:
    """Incidents on some orders: one stays open (its money at risk refreshed:
    incident.updated), one is dismissed (false positive), one heals (auto)."""
    a, b, c = order_ids[:3]
    incidents_report(
        findings=[finding(a, "10.00"), finding(b, "20.00"), finding(c, "5.00", "refund_missing")]
    )
    incidents_report(findings=[finding(a, "12.50")])  # money at risk refreshed
    from reconciliation.selectors import incidents_open

    by_order = {i.order_id: i.id for i in incidents_open()}
    incident_dismiss(incident_id=by_order[b], by=staff, reason="the provider's test charge, not a customer's")
    incidents_auto_resolve(incident_type="refund_missing", still_found=set())


def relay_until_idle() -> None:
    for _ in range(50):
        result = relay_pass(budget=5)
        if not result.sequenced and not any(result.dispatched.values()):
            return
    raise AssertionError("the relay never went idle")
