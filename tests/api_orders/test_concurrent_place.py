"""Concurrent duplicates of one POST orders/ on real PostgreSQL, each thread on its
own connection: exactly one order; the others replay it or get 409."""

import pytest

from idempotency.models import IdempotencyRecord
from orders.models import Order
from payments.models import Payment
from tests.api_orders.conftest import make_client, order_body, place
from tests.fixtures.concurrency import at_once, raised

pytestmark = pytest.mark.django_db(transaction=True)


def _fire(n, request):
    responses = at_once(n, lambda i: request())
    assert raised(responses) == []
    return responses


def test_concurrent_duplicates_make_exactly_one_order(catalog):
    shop = make_client()
    body = order_body()

    responses = _fire(6, lambda: place(shop, body, key="same-key"))

    assert Order.objects.count() == 1
    assert Payment.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1
    created = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r]
    replayed = [r for r in responses if r.get("Idempotent-Replayed") == "true"]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) == 1
    assert len(replayed) + len(in_use) == 5
    assert all(r.content == created[0].content for r in replayed)
    assert all(r.json()["error"]["code"] == "idempotency_key_in_use" for r in in_use)


def test_concurrent_orders_with_different_keys_are_all_accepted(catalog):
    shop = make_client()

    responses = _fire(4, lambda: place(shop))

    assert sorted(r.status_code for r in responses) == [201] * 4
    assert Order.objects.count() == 4
    assert len({r.json()["id"] for r in responses}) == 4
