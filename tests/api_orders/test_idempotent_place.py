"""POST orders/ under the Idempotency-Key protocol (DESIGN §4), end to end."""

import pytest

from idempotency.models import IdempotencyRecord
from orders.models import Order
from tests.api_orders.conftest import assert_envelope, order_body, place

pytestmark = pytest.mark.django_db


def test_a_replay_returns_the_same_bytes_and_makes_no_second_order(catalog, shop):
    first = place(shop, key="k-1")

    second = place(shop, key="k-1")

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert second["Location"] == first["Location"]
    assert Order.objects.count() == 1


def test_the_same_key_with_another_body_is_422(catalog, shop):
    place(shop, key="k-2")

    response = place(shop, order_body(customer_email="bob@example.com"), key="k-2")

    assert_envelope(response, 422, "idempotency_key_reused")
    assert Order.objects.count() == 1


def test_a_validation_error_is_not_stored_and_the_key_can_be_reused(catalog, shop):
    bad = place(shop, order_body(lines=[{"sku": "MUG", "quantity": 0}]), key="k-3")
    assert_envelope(bad, 400, "validation_error")
    unknown = place(shop, order_body(lines=[{"sku": "NOPE", "quantity": 1}]), key="k-3")
    assert_envelope(unknown, 400, "unknown_sku")
    assert IdempotencyRecord.objects.count() == 0
    assert Order.objects.count() == 0

    fixed = place(shop, key="k-3")

    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed
    assert Order.objects.count() == 1


def test_keys_are_per_client(catalog, shop, other_shop):
    mine = place(shop, key="shared")
    theirs = place(other_shop, order_body(customer_email="zed@example.com"), key="shared")

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert Order.objects.count() == 2


def test_a_missing_key_is_400_and_creates_nothing(catalog, shop):
    response = shop.post("/api/v1/orders/", order_body(), format="json")

    assert_envelope(response, 400, "idempotency_key_required")
    assert Order.objects.count() == 0
