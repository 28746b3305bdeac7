import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk_test_wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic c2tfdGVzdF9weXRlc3Q6"},
        {"Authorization": "sk_test_pytest"},
    ],
    ids=["missing", "wrong-key", "empty-key", "basic-scheme", "no-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/charges"), ("POST", "/v1/charges"), ("GET", "/v1/settlements?date=2024-01-01"),
     ("GET", "/_sandbox/faults"), ("POST", "/_sandbox/reset")],
)  # fmt: skip
def test_without_a_valid_bearer_key_every_endpoint_answers_401(psp, headers, method, path):
    import httpx

    response = httpx.request(
        method, psp.base_url + path, headers={**headers, "Idempotency-Key": "k"}, json={}, timeout=5
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_rejected_request_charges_nothing(psp):
    import httpx

    httpx.post(
        psp.base_url + "/v1/charges",
        headers={"Authorization": "Bearer nope", "Idempotency-Key": "k"},
        json={"amount": 100, "currency": "EUR", "payment_method": "pm_card_ok", "reference": "r"},
    )

    assert psp.request("GET", "/v1/charges").json()["data"] == []
