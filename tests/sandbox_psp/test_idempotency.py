import pytest

from tests.fixtures.concurrency import at_once

from .conftest import charge_body

pytestmark = pytest.mark.slow


def _charges(psp, reference: str) -> list[dict]:
    return psp.request("GET", "/v1/charges", params={"reference": reference}).json()["data"]


def test_replay_with_one_key_returns_the_first_response_and_charges_once(psp, post):
    first = post("/v1/charges", charge_body(reference="replay"), key="k-replay")
    second = post("/v1/charges", charge_body(reference="replay"), key="k-replay")

    assert first.status_code == second.status_code == 200
    assert second.content == first.content  # byte for byte
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [c["id"] for c in _charges(psp, "replay")] == [first.json()["id"]]


def test_key_order_in_the_body_does_not_make_a_different_request(psp, post):
    body = charge_body(reference="order")
    first = post("/v1/charges", body, key="k-order")
    second = post("/v1/charges", dict(reversed(list(body.items()))), key="k-order")

    assert second.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "changed",
    [{"amount": 2501}, {"currency": "USD"}, {"reference": "other"}, {"payment_method": "pm_card_declined"}],
)
def test_same_key_with_other_parameters_is_refused(psp, post, changed):
    post("/v1/charges", charge_body(reference="reuse"), key="k-reuse")

    response = post("/v1/charges", charge_body(reference="reuse") | changed, key="k-reuse")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(_charges(psp, "reuse")) == 1


def test_a_charge_key_reused_for_a_refund_is_refused(psp, post, charge):
    created = post("/v1/charges", charge_body(reference="cross"), key="k-cross")

    response = post("/v1/refunds", {"charge": created.json()["id"], "amount": 100}, key="k-cross")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_a_validation_error_is_not_stored_and_the_key_can_be_reused(psp, post):
    bad = post("/v1/charges", charge_body(currency="XXX"), key="k-fix")
    good = post("/v1/charges", charge_body(reference="fixed"), key="k-fix")

    assert bad.status_code == 400
    assert good.status_code == 200
    assert good.json()["status"] == "succeeded"


def test_concurrent_identical_requests_with_one_key_make_one_charge(psp, post):
    # given: a little latency so the requests overlap inside the provider
    psp.set_faults(latency_ms=100)
    # when
    responses = at_once(8, lambda i: post("/v1/charges", charge_body(reference="race"), key="k-race"))

    # then
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(_charges(psp, "race")) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 7
