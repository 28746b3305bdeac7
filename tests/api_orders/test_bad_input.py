"""A table of bad bodies: each is a 400 in the envelope, never a 500, and nothing is stored."""

import json

import pytest

from idempotency.models import IdempotencyRecord
from orders.models import Order
from tests.api_orders.conftest import ORDERS_URL, order_body, place

pytestmark = pytest.mark.django_db

LINE = {"sku": "MUG", "quantity": 1}


def _lines(*lines):
    return order_body(lines=list(lines))


BAD_BODIES = {
    "array instead of object": [order_body()],
    "string instead of object": "an order",
    "number instead of object": 42,
    "null body": None,
    "empty object": {},
    "missing lines": {k: v for k, v in order_body().items() if k != "lines"},
    "empty lines": _lines(),
    "101 lines": order_body(lines=[{"sku": f"S{i}", "quantity": 1} for i in range(101)]),
    "lines is an object": order_body(lines={"sku": "MUG", "quantity": 1}),
    "lines is a string": order_body(lines="MUG"),
    "lines is null": order_body(lines=None),
    "line is an array": _lines(["MUG", 1]),
    "line is null": _lines(None),
    "line is a number": _lines(7),
    "quantity zero": _lines({"sku": "MUG", "quantity": 0}),
    "quantity negative": _lines({"sku": "MUG", "quantity": -3}),
    "quantity 1001": _lines({"sku": "MUG", "quantity": 1001}),
    "quantity huge": _lines({"sku": "MUG", "quantity": 10**40}),
    "quantity float": _lines({"sku": "MUG", "quantity": 1.5}),
    "quantity string": _lines({"sku": "MUG", "quantity": "two"}),
    "quantity bool": _lines({"sku": "MUG", "quantity": True}),
    "quantity null": _lines({"sku": "MUG", "quantity": None}),
    "quantity exponent": _lines({"sku": "MUG", "quantity": 1e308}),
    "sku missing": _lines({"quantity": 1}),
    "sku null": _lines({"sku": None, "quantity": 1}),
    "sku empty": _lines({"sku": "", "quantity": 1}),
    "sku object": _lines({"sku": {"a": 1}, "quantity": 1}),
    "sku too long": _lines({"sku": "X" * 65, "quantity": 1}),
    "sku with NUL": _lines({"sku": "MU\x00G", "quantity": 1}),
    "sku unicode": _lines({"sku": "МУГ-☕", "quantity": 1}),
    "sku emoji": _lines({"sku": "\U0001f600", "quantity": 1}),
    "email missing": {k: v for k, v in order_body().items() if k != "customer_email"},
    "email invalid": order_body(customer_email="not an email"),
    "email null": order_body(customer_email=None),
    "email number": order_body(customer_email=12),
    "email too long": order_body(customer_email="a" * 250 + "@example.com"),
    "email unicode junk": order_body(customer_email="☃@☃"),
    "email with NUL": order_body(customer_email="a\x00b@example.com"),
    "currency unknown": order_body(currency="XYZ"),
    "currency lower case": order_body(currency="eur"),
    "currency null": order_body(currency=None),
    "currency list": order_body(currency=["EUR"]),
    "payment_method empty": order_body(payment_method=""),
    "payment_method spaces": order_body(payment_method="pm card ok"),
    "payment_method too long": order_body(payment_method="pm_" + "x" * 100),
    "payment_method object": order_body(payment_method={"card": "4242"}),
    "payment_method unicode": order_body(payment_method="pm_κάρτα"),
    "unknown field": {**order_body(), "coupon": "FREE"},
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_bad_bodies_are_400(catalog, shop, body):
    response = shop.post(
        ORDERS_URL, json.dumps(body), content_type="application/json", headers={"Idempotency-Key": "bad-1"}
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"validation_error", "unknown_sku", "malformed_request"}
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


RAW_BODIES = {
    "malformed JSON": b'{"customer_email": ',
    "trailing garbage": json.dumps(order_body()).encode() + b"}}",
    "NaN": b'{"customer_email": "a@example.com", "currency": "EUR", "payment_method": "pm_card_ok",'
    b' "lines": [{"sku": "MUG", "quantity": NaN}]}',
    "not UTF-8": b'{"customer_email": "\xff\xfe"}',
    "empty body": b"",
    "deep nesting": b"[" * 5000 + b"]" * 5000,
}


@pytest.mark.parametrize("raw", list(RAW_BODIES.values()), ids=list(RAW_BODIES))
def test_unreadable_bodies_are_400_malformed_request(catalog, shop, raw):
    response = shop.generic(
        "POST", ORDERS_URL, raw, content_type="application/json", headers={"Idempotency-Key": "bad-2"}
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"malformed_request", "validation_error"}
    assert Order.objects.count() == 0


def test_an_oversized_body_is_413(catalog, shop, settings):
    settings.API_MAX_BODY_BYTES = 2048
    body = order_body(customer_email="a" * 3000 + "@example.com")

    response = place(shop, body)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_form_body_is_415(catalog, shop):
    response = shop.post(
        ORDERS_URL, {"customer_email": "a@example.com"}, headers={"Idempotency-Key": "bad-3"}
    )

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "path",
    [
        f"{ORDERS_URL}99999999999999999999999/",
        f"{ORDERS_URL}-1/",
        f"{ORDERS_URL}abc/",
        f"{ORDERS_URL}99999999999999999999999/cancel/",
    ],
)
def test_absurd_order_ids_are_404_not_500(db, shop, path):
    response = (
        shop.get(path) if not path.endswith("cancel/") else shop.post(path, headers={"Idempotency-Key": "x"})
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "query",
    [
        "status=shipped",
        "limit=0",
        "limit=51",
        "limit=abc",
        "created_gte=yesterday",
        "created_lt=2026-13-45",
        "cursor=%00",
        "cursor=bm90LWEtY3Vyc29y",
        "cursor=" + "A" * 600,
    ],
)
def test_bad_list_queries_are_400(db, shop, query):
    response = shop.get(f"{ORDERS_URL}?{query}")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
