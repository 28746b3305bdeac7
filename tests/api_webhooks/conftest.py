"""Helpers for POST /api/v1/webhooks/psp/: events signed like the sandbox signs them."""

from __future__ import annotations

import itertools
import json
import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from payments.webhook_signing import sign_payload

URL = "/api/v1/webhooks/psp/"
SECRET = "whsec_test_h8"
_events = itertools.count(1)


def charge_event(
    *, event_type="charge.succeeded", reference="1", amount=2500, currency="EUR", event_id=None, **charge
):
    status = "succeeded" if event_type == "charge.succeeded" else "failed"
    obj = {
        "id": f"ch_{next(_events)}",
        "object": "charge",
        "status": status,
        "failure_code": None if status == "succeeded" else "card_declined",
        "amount": amount,
        "amount_refunded": 0,
        "currency": currency,
        "payment_method": "pm_card_ok",
        "reference": reference,
        "created": int(time.time()),
        **charge,
    }
    return {
        "id": event_id or f"evt_{next(_events)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def deliver(event, *, secret=None, timestamp=None, header=None, raw=None):
    """POST the event signed with `secret` (default: the secret Concord is configured with)."""
    from django.conf import settings

    secret = settings.PSP_WEBHOOK_SECRET if secret is None else secret
    body = raw if raw is not None else json.dumps(event).encode()
    if header is None:
        header = sign_payload(body, secret, int(time.time()) if timestamp is None else timestamp)
    return APIClient().generic(
        "POST", URL, body, content_type="application/json", headers={"PSP-Signature": header}
    )


def provider_charge(psp, order, *, payment_method="pm_card_ok", amount=2500):
    """A real charge at the sandbox for the order (as the provider's API shows it)."""
    import dataclasses

    result = psp.client().create_charge(
        amount=amount,
        currency="EUR",
        payment_method=payment_method,
        reference=str(order.id),
        idempotency_key=f"test-charge-{order.id}-{payment_method}-{amount}",
    )
    assert result.charge is not None, result
    return {"object": "charge", "payment_method": payment_method, **dataclasses.asdict(result.charge)}


def event_about(obj, *, event_type, event_id=None):
    return {
        "id": event_id or f"evt_{next(_events)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


@pytest.fixture(autouse=True)
def _webhook_secret(settings):
    settings.PSP_WEBHOOK_SECRET = SECRET


@pytest.fixture
def placed_order(db):
    """An order placed through the service, with its pending payment (EUR 25.00)."""
    from orders.services import order_place
    from tests.inventory.factories import ProductFactory

    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=10)
    return order_place(
        client_id=1,
        customer_email="ann@example.com",
        currency="EUR",
        payment_method="pm_card_ok",
        lines=[("MUG", 2)],
    )
