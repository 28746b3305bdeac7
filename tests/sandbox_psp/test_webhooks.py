import itertools
import time

import pytest

import sandbox_psp.signing
from payments.webhook_signing import sign_payload, verify_signature

from .conftest import charge_body

pytestmark = pytest.mark.slow


def test_charge_and_refund_events_are_delivered_signed(psp, webhook_sink, charge, post):
    ok = charge(reference="wh-1")
    declined = charge(reference="wh-2", payment_method="pm_card_declined")
    refund = post("/v1/refunds", {"charge": ok["id"], "amount": 100}).json()

    received = webhook_sink.wait_for(3)

    by_type = {item.event["type"]: item for item in received}
    assert set(by_type) == {"charge.succeeded", "charge.failed", "refund.succeeded"}
    assert by_type["charge.succeeded"].event["data"]["object"] == ok
    assert by_type["charge.failed"].event["data"]["object"]["id"] == declined["id"]
    assert by_type["refund.succeeded"].event["data"]["object"] == refund
    for item in received:
        assert item.event["id"].startswith("evt_")
        assert isinstance(item.event["created"], int)
        verify_signature(item.body, item.headers["psp-signature"], psp.webhook_secret)


def test_delivery_is_retried_with_backoff_until_2xx(psp, webhook_sink, charge):
    webhook_sink.respond_with(500, 503)

    charge()
    received = webhook_sink.wait_for(3)

    assert [item.answered for item in received] == [500, 503, 200]
    assert len({item.event["id"] for item in received}) == 1
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(received)]
    # backoff base 0.2 s in tests, doubling, +-20 % jitter: at least 0.16 s, then 0.32 s
    assert gaps[0] >= 0.15
    assert gaps[1] >= 0.3
    time.sleep(0.5)
    assert len(webhook_sink.received) == 3  # delivered: no more attempts


def test_duplicate_webhook_rate_sends_an_event_twice(psp, webhook_sink, charge):
    psp.set_faults(duplicate_webhook_rate=1)

    charge()
    received = webhook_sink.wait_for(2)

    assert received[0].body == received[1].body


def test_no_webhook_url_means_no_webhooks(psp, charge):
    charge()

    assert psp.request("GET", "/_sandbox/webhooks").json()["data"] == []


def test_the_sandbox_signs_like_concord_verifies():
    payload = b'{"id": "evt_1", "type": "charge.succeeded"}'

    assert sandbox_psp.signing.sign(payload, "whsec_x", 1700000000) == sign_payload(
        payload, "whsec_x", 1700000000
    )


def test_events_may_arrive_out_of_order(psp, webhook_sink, post):
    # Jitter (0-100 ms in tests) makes back-to-back events race; over many pairs some swap.
    psp.set_faults()
    references = [f"ooo-{i}" for i in range(30)]
    for reference in references:
        post("/v1/charges", charge_body(reference=reference))

    received = webhook_sink.wait_for(30)

    order = [item.event["data"]["object"]["reference"] for item in received]
    assert sorted(order) == sorted(references)
    assert order != references
