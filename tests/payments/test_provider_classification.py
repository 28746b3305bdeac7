"""How the client classifies every kind of answer (httpx MockTransport: no network)."""

import json

import httpx
import pytest

from payments.provider import Outcome, ProviderClient, ProviderError, ProviderUnavailable

CHARGE = {
    "id": "ch_1", "object": "charge", "status": "succeeded", "failure_code": None, "amount": 2500,
    "amount_refunded": 0, "currency": "EUR", "payment_method": "pm_card_ok", "reference": "7", "created": 1700000000,
}  # fmt: skip
REFUND = {
    "id": "re_1",
    "charge": "ch_1",
    "amount": 100,
    "currency": "EUR",
    "status": "succeeded",
    "created": 1,
}


def _client(handler) -> ProviderClient:
    return ProviderClient(
        base_url="http://psp.test", api_key="sk_x", connect_timeout=1, read_timeout=1,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip


def _raise(exc_type):
    def handler(request):
        raise exc_type("boom", request=request)

    return handler


def _answer(status, body):
    def handler(request):
        return httpx.Response(status, content=body if isinstance(body, bytes) else json.dumps(body).encode())

    return handler


def _envelope(code):
    return {"error": {"code": code, "message": "m", "details": {}}}


def _charge(client):
    return client.create_charge(
        amount=2500, currency="EUR", payment_method="pm_card_ok", reference="7", idempotency_key="1:charge"
    )


def test_sends_the_key_the_api_key_and_the_body():
    seen = {}

    def handler(request):
        seen.update(headers=request.headers, body=json.loads(request.content), path=request.url.path)
        return httpx.Response(200, json=CHARGE)

    result = _charge(_client(handler))

    assert seen["path"] == "/v1/charges"
    assert seen["headers"]["Idempotency-Key"] == "1:charge"
    assert seen["headers"]["Authorization"] == "Bearer sk_x"
    assert seen["body"] == {
        "amount": 2500,
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "reference": "7",
    }
    assert result.outcome is Outcome.SUCCEEDED
    assert result.charge.id == "ch_1" and result.charge.amount == 2500
    assert result.http_status == 200 and result.duration_ms >= 0


@pytest.mark.parametrize(
    ("handler", "outcome", "failure_code"),
    [
        (_raise(httpx.ConnectError), Outcome.TRANSIENT, None),
        (_raise(httpx.ConnectTimeout), Outcome.TRANSIENT, None),
        (_raise(httpx.PoolTimeout), Outcome.TRANSIENT, None),
        (_raise(httpx.ReadTimeout), Outcome.UNKNOWN, None),
        (_raise(httpx.WriteTimeout), Outcome.UNKNOWN, None),
        (_raise(httpx.ReadError), Outcome.UNKNOWN, None),
        (_raise(httpx.RemoteProtocolError), Outcome.UNKNOWN, None),
        (_answer(500, _envelope("provider_error")), Outcome.TRANSIENT, "provider_error"),
        (_answer(502, b"<html>bad gateway</html>"), Outcome.TRANSIENT, None),
        (_answer(503, b""), Outcome.TRANSIENT, None),
        (_answer(429, _envelope("rate_limited")), Outcome.TRANSIENT, "rate_limited"),
        (_answer(409, _envelope("idempotency_key_in_use")), Outcome.TRANSIENT, "idempotency_key_in_use"),
        (_answer(401, _envelope("unauthorized")), Outcome.TRANSIENT, "unauthorized"),
        (_answer(200, CHARGE | {"status": "failed", "failure_code": "card_declined"}), Outcome.DECLINED, "card_declined"),
        (_answer(402, CHARGE | {"status": "failed", "failure_code": "insufficient_funds"}), Outcome.DECLINED,
         "insufficient_funds"),
        (_answer(402, _envelope("card_declined")), Outcome.DECLINED, "card_declined"),
        (_answer(400, _envelope("invalid_currency")), Outcome.DECLINED, "invalid_currency"),
        (_answer(422, _envelope("idempotency_key_reused")), Outcome.DECLINED, "idempotency_key_reused"),
        (_answer(404, b"not json"), Outcome.DECLINED, "http_404"),
        (_answer(200, b"not json"), Outcome.UNKNOWN, None),
        (_answer(200, {"id": "ch_1"}), Outcome.UNKNOWN, None),
        (_answer(200, [1, 2]), Outcome.UNKNOWN, None),
    ],
    ids=lambda value: value if isinstance(value, str | Outcome) else None,
)  # fmt: skip
def test_every_answer_maps_to_one_outcome(handler, outcome, failure_code):
    result = _charge(_client(handler))

    assert result.outcome is outcome
    assert result.failure_code == failure_code
    if outcome is not Outcome.SUCCEEDED:
        assert result.error


def test_a_declined_charge_keeps_the_provider_object():
    result = _charge(_client(_answer(200, CHARGE | {"status": "failed", "failure_code": "card_declined"})))

    assert result.charge.id == "ch_1" and result.charge.status == "failed"


def test_no_hidden_retries():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503)

    _charge(_client(handler))

    assert len(calls) == 1


@pytest.mark.parametrize(
    ("handler", "outcome", "failure_code"),
    [
        (_answer(200, REFUND), Outcome.SUCCEEDED, None),
        (_answer(400, _envelope("amount_exceeds_refundable")), Outcome.DECLINED, "amount_exceeds_refundable"),
        (_answer(404, _envelope("resource_missing")), Outcome.DECLINED, "resource_missing"),
        (_answer(500, _envelope("provider_error")), Outcome.TRANSIENT, "provider_error"),
        (_raise(httpx.ConnectError), Outcome.TRANSIENT, None),
        (_raise(httpx.ReadTimeout), Outcome.UNKNOWN, None),
        (_answer(200, {"id": "re_1"}), Outcome.UNKNOWN, None),
    ],
)
def test_refund_outcomes(handler, outcome, failure_code):
    result = _client(handler).create_refund(charge_id="ch_1", amount=100, idempotency_key="r1")

    assert (result.outcome, result.failure_code) == (outcome, failure_code)
    assert (result.refund is not None) == (outcome is Outcome.SUCCEEDED)


def test_get_charge_returns_none_for_404_and_quotes_the_id():
    paths = []

    def handler(request):
        paths.append(request.url.raw_path)
        return httpx.Response(404, json=_envelope("resource_missing"))

    assert _client(handler).get_charge("ch_1/../../x") is None
    assert paths == [b"/v1/charges/ch_1%2F..%2F..%2Fx"]
    assert _client(handler).get_charge("") is None


@pytest.mark.parametrize(
    "handler",
    [
        _raise(httpx.ConnectError),
        _raise(httpx.ReadTimeout),
        _answer(500, b""),
        _answer(429, b""),
        _answer(200, b"x"),
    ],
)
def test_reads_raise_provider_unavailable_when_transient(handler):
    with pytest.raises(ProviderUnavailable):
        _client(handler).get_charge("ch_1")
    with pytest.raises(ProviderUnavailable):
        _client(handler).list_charges(reference="7")


def test_reads_raise_provider_error_for_a_permanent_refusal():
    with pytest.raises(ProviderError) as caught:
        _client(_answer(400, _envelope("parameter_invalid"))).list_charges(created_gte=-1)

    assert not isinstance(caught.value, ProviderUnavailable)
    assert caught.value.code == "parameter_invalid" and caught.value.http_status == 400


def test_iter_charges_follows_the_cursor():
    pages = {
        None: ([CHARGE | {"id": "ch_1"}, CHARGE | {"id": "ch_2"}], True),
        "ch_2": ([CHARGE | {"id": "ch_3"}], False),
    }
    seen_params = []

    def handler(request):
        params = dict(request.url.params)
        seen_params.append(params)
        data, has_more = pages[params.get("starting_after")]
        return httpx.Response(200, json={"data": data, "has_more": has_more})

    ids = [c.id for c in _client(handler).iter_charges(created_gte=5)]

    assert ids == ["ch_1", "ch_2", "ch_3"]
    assert all(p["created_gte"] == "5" for p in seen_params)
    assert "reference" not in seen_params[0]  # None filters are not sent
