"""Malformed requests get a 4xx with the error envelope, never a 500."""

import pytest

from .conftest import charge_body, new_key

pytestmark = pytest.mark.slow

OK = charge_body()


def _without(name: str) -> dict:
    return {k: v for k, v in OK.items() if k != name}


CHARGE_BODIES = [
    ("negative amount", OK | {"amount": -100}, "invalid_amount"),
    ("zero amount", OK | {"amount": 0}, "invalid_amount"),
    ("fractional amount", OK | {"amount": 10.5}, "invalid_amount"),
    ("float amount", OK | {"amount": 10.0}, "invalid_amount"),
    ("string amount", OK | {"amount": "100"}, "invalid_amount"),
    ("boolean amount", OK | {"amount": True}, "invalid_amount"),
    ("huge amount", OK | {"amount": 10**30}, "amount_too_large"),
    ("just too large", OK | {"amount": 10**10}, "amount_too_large"),
    ("unknown currency", OK | {"currency": "XXX"}, "invalid_currency"),
    ("currency not text", OK | {"currency": 978}, "invalid_currency"),
    ("long currency", OK | {"currency": "EUROS"}, "invalid_currency"),
    ("unknown payment method", OK | {"payment_method": "pm_card_gold"}, "invalid_payment_method"),
    ("payment method not text", OK | {"payment_method": ["pm_card_ok"]}, "invalid_payment_method"),
    ("empty reference", OK | {"reference": ""}, "invalid_reference"),
    ("reference too long", OK | {"reference": "x" * 256}, "invalid_reference"),
    ("reference with control chars", OK | {"reference": "a\nb"}, "invalid_reference"),
    ("missing amount", _without("amount"), "parameter_missing"),
    ("missing currency", _without("currency"), "parameter_missing"),
    ("missing payment method", _without("payment_method"), "parameter_missing"),
    ("missing reference", _without("reference"), "parameter_missing"),
    ("null amount", OK | {"amount": None}, "parameter_missing"),
    ("unknown field", OK | {"amount_cents": 1}, "parameter_unknown"),
]


@pytest.mark.parametrize(
    ("body", "code"), [(b, c) for _, b, c in CHARGE_BODIES], ids=[n for n, _, _ in CHARGE_BODIES]
)
def test_bad_charge_bodies_are_refused(psp, post, body, code):
    response = post("/v1/charges", body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message", "details"}


RAW_BODIES = [
    ("malformed json", b'{"amount": ', "invalid_json"),
    ("not an object", b"[1, 2]", "invalid_request"),
    ("empty", b"", "invalid_request"),
    ("deeply nested", b"[" * 50_000 + b"]" * 50_000, "request_too_large"),
    ("nested within the size limit", b"[" * 20_000 + b"]" * 20_000, "invalid_json"),
    ("not utf-8", b'{"amount": "\xff"}', "invalid_json"),
    (
        "NaN",
        b'{"amount": NaN, "currency": "EUR", "payment_method": "pm_card_ok", "reference": "r"}',
        "invalid_amount",
    ),
]


@pytest.mark.parametrize(
    ("raw", "code"), [(b, c) for _, b, c in RAW_BODIES], ids=[n for n, _, _ in RAW_BODIES]
)
@pytest.mark.parametrize("path", ["/v1/charges", "/v1/refunds"])
def test_unparseable_bodies_are_refused(psp, raw, code, path):
    response = psp.request(
        "POST", path, content=raw, headers={"Idempotency-Key": new_key(), "Content-Type": "application/json"}
    )

    assert 400 <= response.status_code < 500, response.text
    if path == "/v1/charges" or code != "invalid_amount":
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "idempotency_key_required"), ({"Idempotency-Key": "k" * 256}, "idempotency_key_invalid")],
)
def test_writes_need_a_valid_idempotency_key(psp, headers, code):
    response = psp.request("POST", "/v1/charges", json=OK, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_refund_of_an_unknown_charge_is_404(psp, post):
    for charge_id in ["ch_000000000000000000000000", "nope", 42, None]:
        response = post("/v1/refunds", {"charge": charge_id, "amount": 100})
        assert response.status_code in (400, 404), response.text
        assert response.json()["error"]["code"] in ("resource_missing", "parameter_missing")


@pytest.mark.parametrize("amount", [-1, 0, 1.5, "10", 10**30])
def test_refund_amount_is_validated(psp, post, charge, amount):
    created = charge()

    response = post("/v1/refunds", {"charge": created["id"], "amount": amount})

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_amount", "amount_too_large")


def test_a_declined_charge_cannot_be_refunded(psp, post, charge):
    declined = charge(payment_method="pm_card_declined")

    response = post("/v1/refunds", {"charge": declined["id"], "amount": 100})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "charge_not_refundable"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/charges/ch_000000000000000000000000",
        "/v1/charges/%00",
        "/v1/refunds/re_nope",
        "/v1/nothing",
        "/v1/charges?limit=0",
        "/v1/charges?limit=101",
        "/v1/charges?limit=ten",
        "/v1/charges?created_gte=-1",
        "/v1/charges?created_gte=99999999999999999999999",
        "/v1/charges?starting_after=ch_unknown",
        "/v1/refunds?starting_after=re_unknown",
        "/v1/settlements",
        "/v1/settlements?date=2024-13-01",
        "/v1/settlements?date=yesterday",
        "/v1/settlements?date=2024-01-01&format=xml",
    ],
)
def test_bad_reads_are_4xx(psp, path):
    response = psp.request("GET", path)

    assert 400 <= response.status_code < 500, response.text
    assert "code" in response.json()["error"]


def test_wrong_method_is_405(psp):
    response = psp.request("DELETE", "/v1/charges")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "body",
    [{"error_rate": 2}, {"error_rate": -0.1}, {"error_rate": "half"}, {"latency_ms": -1}, {"seed": "x"},
     {"seed": 1.5}, {"typo_rate": 0.5}, {"timeout_seconds": 10_000}],
)  # fmt: skip
def test_bad_faults_are_refused(psp, body):
    response = psp.request("POST", "/_sandbox/faults", json=body)

    assert response.status_code == 400
    assert psp.faults()["error_rate"] == 0
