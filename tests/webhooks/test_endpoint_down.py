"""A shop's endpoint that is down for a while receives everything afterwards, in
order per order, with real worker processes (relay, consumer, sender)."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from orders.services import order_cancel, order_confirm
from webhooks.services import webhook_endpoint_create

from .conftest import place_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "OUTBOX_POLL_INTERVAL": "0.5",
    "WEBHOOK_POLL_INTERVAL": "0.5",
    "WEBHOOK_RETRY_SCHEDULE": ",".join(["0.3"] * 200),
    "RECONCILE_INTERVAL": "3600",
}


def test_an_endpoint_down_for_a_while_gets_everything_afterwards_in_order_per_order(
    shop_a, catalog, endpoint_server, celery_worker_factory
):
    webhook_endpoint_create(client_id=shop_a.user.pk, url=endpoint_server.url, event_types=["*"])
    worker = celery_worker_factory(beat=True, env=WORKER_ENV)
    endpoint_server.down()
    orders = [place_for(shop_a) for _ in range(5)]
    for order_id in orders[:3]:
        order_confirm(order_id=order_id, reason="t")
    for order_id in orders[3:]:
        order_cancel(order_id=order_id, failure_reason="cancelled_by_client", reason="t")
    endpoint_server.wait_for(8, timeout=60, predicate=lambda r: r.answered == 503)
    time.sleep(1)
    endpoint_server.up()

    def ok():
        return [r for r in endpoint_server.received if r.answered == 200]

    deadline = time.monotonic() + 60
    while len({r.headers["webhook-id"] for r in ok()}) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    delivered = ok()
    assert len({r.headers["webhook-id"] for r in delivered}) == 10, worker.log()[-3000:]
    by_order = defaultdict(list)
    for r in delivered:
        by_order[r.event["data"]["object"]["id"]].append(r.event["type"])
    assert dict(by_order) == {
        **{o: ["order.placed", "order.confirmed"] for o in orders[:3]},
        **{o: ["order.placed", "order.cancelled"] for o in orders[3:]},
    }
