"""The case file's sources beyond the saga: the API request behind the order (its
Idempotency-Key record) and the provider's webhooks about its payment."""

import io
import json
import time

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from payments.webhook_signing import sign_payload

pytestmark = pytest.mark.django_db


def _api_client() -> APIClient:
    out = io.StringIO()
    call_command("create_api_client", "shop-app", stdout=out)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip().splitlines()[-1]}")
    return client


def _deliver(settings, event: dict):
    body = json.dumps(event).encode()
    header = sign_payload(body, settings.PSP_WEBHOOK_SECRET, int(time.time()))
    return APIClient().generic(
        "POST",
        "/api/v1/webhooks/psp/",
        body,
        content_type="application/json",
        headers={"PSP-Signature": header},
    )


def test_the_api_request_and_the_webhooks_appear_in_the_story(support, shop, settings):
    # given: an order placed through the REST API, its checkout run through the sandbox.
    api = _api_client()
    body = {
        "customer_email": "app@example.com",
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "lines": [{"sku": shop.SKU, "quantity": 1}],
    }
    placed = api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="app-key-1")
    replay = api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="app-key-1")
    assert placed.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    order_id = placed.json()["id"]
    assert shop.advance(order_id) == "completed"
    # and the provider's webhook about the charge, delivered twice (the provider retries).
    [charge] = shop.psp.request("GET", "/v1/charges", params={"reference": order_id}).json()["data"]
    charge_id = charge["id"]
    event = {
        "id": "evt_bo_1",
        "object": "event",
        "type": "charge.succeeded",
        "created": 1,
        "data": {"object": charge},
    }
    assert _deliver(settings, event).status_code == 200
    assert _deliver(settings, event).status_code == 200

    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()

    assert "API POST /api/v1/orders/ → 201" in page
    assert (
        "Idempotency-Key &#x27;app-key-1&#x27;; any replay of this key returns this stored response" in page
    )
    assert f"Webhook charge.succeeded ({charge_id}) → applied" in page
    assert "event evt_bo_1; delivered 2 times" in page
    assert (
        page.index("API POST")
        < page.index("charge_payment (forward)")
        < page.index("Webhook charge.succeeded")
    )
