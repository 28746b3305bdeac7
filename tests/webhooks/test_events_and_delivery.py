"""The events list and deliveries: only the client's own events, signed per Standard
Webhooks, retried, in order per order, disabled after persistent failure, replayable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from orders.services import order_cancel, order_confirm
from outbox.relay import relay_pass
from payments import services as payments
from payments.selectors import payment_for_order
from tests.payments.factories import StaffUserFactory
from webhooks.delivery import deliver_due
from webhooks.models import DeliveryStatus, EndpointStatus, WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_delivery_replay

from .conftest import EVENTS_URL, place_for, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _short_retries(settings):
    settings.WEBHOOK_RETRY_SCHEDULE = (0, 0)  # three attempts, due at once


def test_a_client_lists_only_its_own_events_newest_first_with_a_cursor(shop_a, shop_b, catalog):
    mine = [place_for(shop_a) for _ in range(3)]
    theirs = place_for(shop_b)
    order_confirm(order_id=mine[0], reason="t")
    relay_pass()
    page = shop_a.get(f"{EVENTS_URL}?limit=2").json()
    assert [e["type"] for e in page["results"]] == ["order.confirmed", "order.placed"]
    assert page["results"][0]["data"]["object"]["id"] == mine[0]
    assert set(page["results"][0]) == {"id", "type", "created", "created_at", "data"}
    assert "client_id" not in page["results"][0]["data"]["object"]
    rest = shop_a.get(page["next"]).json()
    assert rest["next"] is None
    seen = [e["data"]["object"]["id"] for e in page["results"] + rest["results"]]
    assert sorted(seen) == sorted([mine[0], *mine])
    assert theirs not in seen
    other = shop_b.get(EVENTS_URL).json()["results"]
    assert [e["data"]["object"]["id"] for e in other] == [theirs]
    assert shop_a.get(f"{EVENTS_URL}?type=order.confirmed").json()["results"][0]["type"] == "order.confirmed"


@pytest.mark.parametrize("query", ["cursor=bogus", "limit=0", "limit=1000", "type=incident.opened"])
def test_bad_event_queries_are_400(shop_a, query):
    response = shop_a.get(f"{EVENTS_URL}?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_deliveries_are_signed_per_standard_webhooks_and_match_the_events_list(
    shop_a, catalog, endpoint_server
):
    secret = register(shop_a, endpoint_server.url, ["order.placed", "payment.captured"]).json()["secret"]
    order_id = place_for(shop_a)
    payment = payment_for_order(order_id=order_id)
    payments.payment_capture(payment_id=payment.id, provider_charge_id="ch_wh_1", reason="t")
    relay_pass()
    assert deliver_due() == 2
    received = endpoint_server.wait_for(2)
    for item in received:
        # The shop's check, with the reference library: raises if anything is off.
        assert Webhook(secret).verify(item.body, item.headers)["id"] == item.headers["webhook-id"]
        assert item.headers["webhook-signature"].startswith("v1,")
    listed = {e["id"]: e for e in shop_a.get(EVENTS_URL).json()["results"]}
    assert [r.event for r in received] == [listed[r.headers["webhook-id"]] for r in received]
    assert [r.event["type"] for r in received] == ["order.placed", "payment.captured"]
    assert received[1].event["data"]["object"]["order_id"] == order_id
    with pytest.raises(Exception):  # noqa: B017, PT011 - a tampered body fails the shop's check
        Webhook(secret).verify(received[0].body.replace(b"order", b"ordeR"), received[0].headers)


def test_a_failing_endpoint_is_retried_and_keeps_the_order_of_each_order(shop_a, catalog, endpoint_server):
    register(shop_a, endpoint_server.url)
    first, second = place_for(shop_a), place_for(shop_a)
    order_confirm(order_id=first, reason="t")
    relay_pass()
    endpoint_server.respond_with(503)  # the first attempt (order.placed of `first`) fails
    deliver_due()
    by_order: dict[int, list[str]] = {}
    for item in endpoint_server.wait_for(4):
        if item.answered == 200:
            by_order.setdefault(item.event["data"]["object"]["id"], []).append(item.event["type"])
    # `first`'s confirmation never overtook its placement, even though placement failed once.
    assert by_order == {first: ["order.placed", "order.confirmed"], second: ["order.placed"]}
    failed_once = WebhookDelivery.objects.get(order_id=first, event__type="order.placed")
    assert (failed_once.status, failed_once.attempts, failed_once.last_status_code) == ("succeeded", 2, 200)


def test_persistent_failure_disables_the_endpoint_with_the_reason_then_a_replay_delivers_in_order(
    shop_a, catalog, endpoint_server
):
    register(shop_a, endpoint_server.url)
    order_id = place_for(shop_a)
    relay_pass()
    endpoint_server.respond_with(500, 500, 500)
    deliver_due()
    delivery = WebhookDelivery.objects.get()
    endpoint = WebhookEndpoint.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert endpoint.status == EndpointStatus.DISABLED
    assert "failed 3 times" in endpoint.disabled_reason and "HTTP 500" in endpoint.disabled_reason
    assert shop_a.get(f"/api/v1/webhook-endpoints/{endpoint.pk}/").json()["status"] == "disabled"
    # While disabled, nothing more is delivered.
    order_cancel(order_id=order_id, failure_reason="cancelled_by_staff", reason="t")
    relay_pass()
    assert deliver_due() == 0
    # A person replays the failed one: the endpoint is enabled again and gets it.
    staff = StaffUserFactory(is_superuser=True)
    webhook_delivery_replay(delivery_id=delivery.pk, by=staff, reason="shop fixed its server")
    deliver_due()
    delivered = [r.event["type"] for r in endpoint_server.received if r.answered == 200]
    assert delivered == ["order.placed"]  # order.cancelled came while disabled: not queued for it
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 1)


def test_retry_timing_lives_in_the_database(shop_a, catalog, endpoint_server, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = (300,)
    register(shop_a, endpoint_server.url)
    place_for(shop_a)
    relay_pass()
    endpoint_server.respond_with(500)
    deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 260 < wait <= 335  # 300 s, jitter ±10 %
    assert deliver_due() == 0  # not due yet
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliver_due() == 1


def test_a_deleted_endpoint_gets_nothing_more(shop_a, catalog, endpoint_server):
    endpoint_id = register(shop_a, endpoint_server.url).json()["id"]
    place_for(shop_a)
    relay_pass()
    shop_a.delete(f"/api/v1/webhook-endpoints/{endpoint_id}/")
    assert deliver_due() == 0
    assert WebhookDelivery.objects.get().status == DeliveryStatus.CANCELLED


def test_the_default_schedule_retries_for_more_than_a_day():
    from webhooks.conf import DEFAULT_RETRY_SCHEDULE

    assert sum(DEFAULT_RETRY_SCHEDULE) * 0.9 > 24 * 3600  # even with the shortest jitter
