"""The case file shows every message to the customer and every webhook delivery,
and support replays a failed delivery (person and reason recorded)."""

from __future__ import annotations

import pytest
from django.core import mail

from backoffice.models import StaffAction
from notifications.sending import send_pending
from outbox.relay import relay_pass
from tests.fixtures.psp import WebhookSink
from webhooks.delivery import deliver_due
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create

from .conftest import new_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop_endpoint(settings):
    settings.WEBHOOK_RETRY_SCHEDULE = (0, 0)
    sink = WebhookSink()
    webhook_endpoint_create(client_id=1, url=sink.url, event_types=["order.confirmed"])
    yield sink
    sink.close()


def confirmed_with_a_failed_delivery(shop, shop_endpoint) -> int:
    order_id = shop.confirmed()
    relay_pass()
    send_pending()
    shop_endpoint.respond_with(500, 500, 500)
    deliver_due()
    assert WebhookDelivery.objects.get(order_id=order_id).status == "failed"
    return order_id


def test_case_file_shows_the_message_and_the_failed_delivery_and_support_replays_it(
    support, shop, shop_endpoint, support_user
):
    order_id = confirmed_with_a_failed_delivery(shop, shop_endpoint)
    assert [m.subject for m in mail.outbox] == [f"Your order {order_id} is confirmed"]
    page = support.get(f"/backoffice/orders/{order_id}/").content.decode()
    assert f"Your order {order_id} is confirmed" in page
    assert "Webhook order.confirmed to" in page and "failed (3 attempts)" in page
    assert "HTTP 500" in page
    delivery = WebhookDelivery.objects.get(order_id=order_id)
    assert f"Replay webhook delivery #{delivery.pk}" in page

    form = {
        "op": "replay_delivery",
        "delivery_id": delivery.pk,
        "reason": "shop is back",
        "action_key": new_key(),
    }
    preview = support.post(f"/backoffice/orders/{order_id}/action/", form).content.decode()
    assert "with the same webhook-id" in preview and "enabled again" in preview
    done = support.post(f"/backoffice/orders/{order_id}/action/", {**form, "confirm": "1"}, follow=True)
    assert f"Webhook delivery #{delivery.pk} is being sent again." in done.content.decode()
    action = StaffAction.objects.get(action="webhook_replay")
    assert (action.user, action.reason, action.order_id) == (support_user, "shop is back", order_id)
    assert WebhookEndpoint.objects.get().status == "enabled"
    deliver_due()
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "succeeded"
    # The same form again changes nothing.
    again = support.post(f"/backoffice/orders/{order_id}/action/", {**form, "confirm": "1"}, follow=True)
    assert (
        "not possible for this order now" in again.content.decode()
        or "already submitted" in again.content.decode()
    )
    assert StaffAction.objects.filter(action="webhook_replay").count() == 1


def test_finance_cannot_replay(finance, shop, shop_endpoint):
    order_id = confirmed_with_a_failed_delivery(shop, shop_endpoint)
    delivery = WebhookDelivery.objects.get(order_id=order_id)
    response = finance.post(
        f"/backoffice/orders/{order_id}/action/",
        {
            "op": "replay_delivery",
            "delivery_id": delivery.pk,
            "reason": "x",
            "action_key": new_key(),
            "confirm": "1",
        },
    )
    assert response.status_code in (302, 403)
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "failed"
