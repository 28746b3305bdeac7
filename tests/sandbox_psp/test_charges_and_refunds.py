import pytest

from tests.fixtures.concurrency import at_once

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("payment_method", "status", "failure_code"),
    [
        ("pm_card_ok", "succeeded", None),
        ("pm_card_declined", "failed", "card_declined"),
        ("pm_card_insufficient_funds", "failed", "insufficient_funds"),
    ],
)
def test_the_payment_method_decides_the_outcome(psp, charge, payment_method, status, failure_code):
    created = charge(payment_method=payment_method, amount=1234, currency="usd", reference="o-7")

    assert created["id"].startswith("ch_")
    assert (created["status"], created["failure_code"]) == (status, failure_code)
    assert (created["amount"], created["currency"], created["reference"]) == (1234, "USD", "o-7")
    assert isinstance(created["created"], int)
    assert psp.request("GET", f"/v1/charges/{created['id']}").json() == created


def test_partial_refunds_add_up_and_never_exceed_the_captured_amount(psp, post, charge):
    created = charge(amount=1000)

    first = post("/v1/refunds", {"charge": created["id"], "amount": 300})
    second = post("/v1/refunds", {"charge": created["id"], "amount": 600})
    too_much = post("/v1/refunds", {"charge": created["id"], "amount": 101})
    rest = post("/v1/refunds", {"charge": created["id"]})  # no amount: the remainder
    after_full = post("/v1/refunds", {"charge": created["id"], "amount": 1})

    assert [first.status_code, second.status_code, rest.status_code] == [200, 200, 200]
    assert rest.json()["amount"] == 100
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_exceeds_refundable"
    assert too_much.json()["error"]["details"]["refundable"] == 100
    assert after_full.json()["error"]["code"] == "charge_already_refunded"
    assert psp.request("GET", f"/v1/charges/{created['id']}").json()["amount_refunded"] == 1000
    listed = psp.request("GET", "/v1/refunds", params={"charge": created["id"]}).json()["data"]
    assert [r["amount"] for r in listed] == [300, 600, 100]
    assert {r["currency"] for r in listed} == {"EUR"}


def test_a_refund_above_the_captured_amount_is_refused(psp, post, charge):
    created = charge(amount=500)

    response = post("/v1/refunds", {"charge": created["id"], "amount": 501})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"
    assert psp.request("GET", "/v1/refunds").json()["data"] == []


def test_concurrent_refunds_with_different_keys_cannot_over_refund(psp, post, charge):
    created = charge(amount=1000)

    results = at_once(6, lambda i: post("/v1/refunds", {"charge": created["id"], "amount": 400}).status_code)

    assert sorted(results) == [200, 200, 400, 400, 400, 400]
    assert psp.request("GET", f"/v1/charges/{created['id']}").json()["amount_refunded"] == 800


def test_lists_filter_and_paginate_in_a_stable_order(psp, charge):
    ids = [charge(reference=f"page-{n % 2}")["id"] for n in range(5)]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
        page = psp.request("GET", "/v1/charges", params=params).json()
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]

    assert seen == ids  # oldest first, every charge once
    by_reference = psp.request("GET", "/v1/charges", params={"reference": "page-0"}).json()
    assert [c["id"] for c in by_reference["data"]] == ids[0::2]
    created = psp.request("GET", f"/v1/charges/{ids[0]}").json()["created"]
    assert len(psp.request("GET", "/v1/charges", params={"created_gte": created}).json()["data"]) == 5
    assert psp.request("GET", "/v1/charges", params={"created_gte": created + 3600}).json()["data"] == []


def test_reset_forgets_everything(psp, charge):
    charge()

    psp.reset()

    assert psp.request("GET", "/v1/charges").json() == {"object": "list", "data": [], "has_more": False}
