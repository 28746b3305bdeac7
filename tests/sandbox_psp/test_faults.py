import time

import pytest

from .conftest import charge_body

pytestmark = pytest.mark.slow


def _charge_count(psp) -> int:
    return len(psp.request("GET", "/v1/charges", params={"limit": 100}).json()["data"])


def test_faults_are_shown_and_cleared(psp):
    shown = psp.set_faults(error_rate=0.25, latency_ms=5, seed=3)

    assert shown["error_rate"] == 0.25 and shown["latency_ms"] == 5 and shown["seed"] == 3
    assert shown["decline_rate"] == 0  # omitted = 0
    assert psp.faults() == shown
    assert psp.clear_faults()["error_rate"] == 0


def test_error_rate_fails_before_anything_is_charged(psp, post):
    psp.set_faults(error_rate=1)

    response = post("/v1/charges", charge_body(), key="k-error")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "provider_error"
    psp.clear_faults()
    assert _charge_count(psp) == 0
    # nothing was stored under the key either: the retry charges for real
    assert post("/v1/charges", charge_body(), key="k-error").json()["status"] == "succeeded"


def test_error_after_commit_charges_then_answers_500(psp, post):
    psp.set_faults(error_after_commit_rate=1)

    response = post("/v1/charges", charge_body(reference="eac"), key="k-eac")

    assert response.status_code == 500
    psp.clear_faults()
    charges = psp.request("GET", "/v1/charges", params={"reference": "eac"}).json()["data"]
    assert len(charges) == 1
    retry = post("/v1/charges", charge_body(reference="eac"), key="k-eac")
    assert retry.json()["id"] == charges[0]["id"]
    assert _charge_count(psp) == 1


def test_timeout_after_commit_charges_and_answers_too_late(psp):
    import httpx

    psp.set_faults(timeout_after_commit_rate=1, timeout_seconds=2)
    started = time.monotonic()

    with pytest.raises(httpx.ReadTimeout):
        psp.request("POST", "/v1/charges", json=charge_body(reference="slow"), headers={"Idempotency-Key": "k"},
                    timeout=httpx.Timeout(5, read=0.5))  # fmt: skip

    assert time.monotonic() - started < 1.5
    assert len(psp.request("GET", "/v1/charges", params={"reference": "slow"}).json()["data"]) == 1


def test_latency_delays_every_api_call(psp):
    psp.set_faults(latency_ms=300)
    started = time.monotonic()

    psp.request("GET", "/v1/charges")

    assert time.monotonic() - started >= 0.3


def test_decline_rate_declines_good_cards(psp, charge):
    psp.set_faults(decline_rate=1)

    declined = charge(payment_method="pm_card_ok")

    assert (declined["status"], declined["failure_code"]) == ("failed", "card_declined")


def _run(psp, post, n: int) -> list[str]:
    outcomes = []
    for i in range(n):
        response = post("/v1/charges", charge_body(reference=f"seeded-{i}"))
        outcomes.append(str(response.status_code) + (response.json().get("status") or ""))
    return outcomes


def test_a_seed_makes_faults_reproducible(psp, post):
    faults = {"error_rate": 0.3, "error_after_commit_rate": 0.2, "decline_rate": 0.3}

    psp.set_faults(**faults, seed=1234)
    first = _run(psp, post, 20)
    psp.reset()
    psp.set_faults(**faults, seed=1234)
    second = _run(psp, post, 20)
    psp.set_faults(**faults, seed=4321)
    other = _run(psp, post, 20)

    assert first == second
    assert len(set(first)) == 3  # 500s, successes and declines all occurred
    assert other != first
