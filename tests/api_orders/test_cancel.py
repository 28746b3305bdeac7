"""POST orders/{id}/cancel/: 202 with the order, idempotent, scoped, 409 when it cannot be done."""

import pytest

from orders.selectors import order_get
from orders.services import order_confirm
from sagas.executor import advance_run
from sagas.models import SagaRun
from sagas.selectors import saga_run_for_subject
from tests.api_orders.conftest import ORDERS_URL, assert_envelope, cancel, make_client, place

pytestmark = pytest.mark.django_db


def test_cancelling_a_confirmed_order_answers_202_cancelling(catalog, shop):
    order_id = place(shop).json()["id"]
    order_confirm(order_id=order_id, reason="checkout done")

    response = cancel(shop, order_id)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] == order_id
    assert body["status"] == "cancelling"
    assert body["failure_reason"] == "cancelled_by_client"
    # The refund-and-restock saga was started in the same transaction.
    assert saga_run_for_subject(saga_type="order_cancellation", subject_id=str(order_id)) is not None


def test_cancel_is_idempotent_per_key_and_harmless_when_repeated(catalog, shop):
    order_id = place(shop).json()["id"]
    order_confirm(order_id=order_id, reason="checkout done")

    first = cancel(shop, order_id, key="c-1")
    replay = cancel(shop, order_id, key="c-1")
    again = cancel(shop, order_id, key="c-2")

    assert replay.content == first.content and replay["Idempotent-Replayed"] == "true"
    assert again.status_code == 202 and again.json()["status"] == "cancelling"
    assert "Idempotent-Replayed" not in again


def test_the_same_cancel_key_on_another_order_is_422(catalog, shop):
    first_id, second_id = place(shop).json()["id"], place(shop).json()["id"]
    cancel(shop, first_id, key="c-3")

    assert_envelope(cancel(shop, second_id, key="c-3"), 422, "idempotency_key_reused")


def test_an_order_whose_checkout_staff_resolved_is_409_order_not_cancellable(catalog, shop):
    order_id = place(shop).json()["id"]
    SagaRun.objects.filter(saga_type="checkout", subject_id=str(order_id)).update(status="resolved")

    error = assert_envelope(cancel(shop, order_id, key="c-4"), 409, "order_not_cancellable")

    assert error["details"]["status"] == "pending"
    assert order_get(order_id=order_id).status == "pending"


def test_cancel_of_a_missing_order_is_404(db, shop):
    assert_envelope(cancel(shop, 424242), 404, "not_found")


@pytest.mark.django_db(transaction=True)
def test_a_pending_order_is_cancelled_by_its_checkout_compensating(catalog):
    shop = make_client()
    order_id = place(shop).json()["id"]

    response = cancel(shop, order_id)
    assert response.status_code == 202, response.content
    # The order says so at once; the checkout run compensates at its next step.
    assert response.json()["status"] in {"cancelling", "cancelled"}
    assert response.json()["failure_reason"] == "cancelled_by_client"
    run = saga_run_for_subject(saga_type="checkout", subject_id=str(order_id))
    advance_run(run.id)

    order = shop.get(f"{ORDERS_URL}{order_id}/").json()
    assert order["status"] == "cancelled"
    assert order["failure_reason"] == "cancelled_by_client"
