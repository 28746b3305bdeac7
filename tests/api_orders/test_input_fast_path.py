"""The lean check of POST orders/ bodies (orders.serializers.order_input_valid) never
disagrees with OrderInput: what it accepts, OrderInput accepts with the same data;
what it is unsure of goes to OrderInput, which words the 400 as before."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from orders.serializers import OrderInput, order_input_valid


def _plain(value):
    return json.loads(json.dumps(value))


def _agrees(body) -> bool | None:
    fast = order_input_valid(body)
    serializer = OrderInput(data=body)
    valid = serializer.is_valid()
    if fast is not None:
        assert valid, (body, serializer.errors)
        assert _plain(fast) == _plain(serializer.validated_data)
    return None if fast is None else True


VALID = {
    "customer_email": "ann@example.com",
    "currency": "EUR",
    "payment_method": "pm_card_ok",
    "lines": [{"sku": "MUG", "quantity": 2}, {"sku": "TEE", "quantity": 1}],
}


def test_a_plain_valid_order_takes_the_lean_path():
    assert order_input_valid(VALID) == VALID


def test_doubtful_bodies_go_to_the_serializer():
    doubtful = [
        [],
        {**VALID, "total": "1.00"},
        {k: v for k, v in VALID.items() if k != "currency"},
        {**VALID, "customer_email": " ann@example.com"},
        {**VALID, "customer_email": "not-an-address"},
        {**VALID, "currency": "eur"},
        {**VALID, "payment_method": "pm card"},
        {**VALID, "payment_method": "pm_card_ok\n"},
        {**VALID, "lines": []},
        {**VALID, "lines": [{"sku": "MUG", "quantity": "2"}]},
        {**VALID, "lines": [{"sku": "MUG", "quantity": True}]},
        {**VALID, "lines": [{"sku": "MUG", "quantity": 0}]},
        {**VALID, "lines": [{"sku": "MUG", "quantity": 1001}]},
        {**VALID, "lines": [{"sku": "", "quantity": 1}]},
        {**VALID, "lines": [{"sku": "M\x00G", "quantity": 1}]},
        {**VALID, "lines": [{"sku": "MUG", "quantity": 1}, {"sku": "MUG", "quantity": 2}]},
        {**VALID, "lines": [{"sku": "MUG", "quantity": 1, "price": "1"}]},
        {**VALID, "lines": [{"sku": "x" * 65, "quantity": 1}]},
        {**VALID, "lines": [{"sku": f"S{i}", "quantity": 1} for i in range(101)]},
    ]
    for body in doubtful:
        assert order_input_valid(body) is None, body
        _agrees(body)


_text = st.one_of(
    st.sampled_from(["ann@example.com", "EUR", "USD", "JPY", "pm_card_ok", "MUG", "", " x", "a@b.co"]),
    st.text(max_size=70),
)
_scalar = st.one_of(_text, st.integers(-5, 1005), st.booleans(), st.none(), st.floats(allow_nan=False))
_line = st.dictionaries(
    st.sampled_from(["sku", "quantity", "price"]), _scalar, max_size=3
) | st.fixed_dictionaries({"sku": _text, "quantity": st.integers(-1, 1002)})


@settings(max_examples=300, deadline=None)
@given(
    email=_scalar,
    currency=_scalar,
    payment_method=_scalar,
    lines=st.lists(_line, max_size=4),
    extra=st.dictionaries(st.sampled_from(["total", "status"]), _scalar, max_size=1),
)
def test_the_lean_check_never_accepts_what_the_serializer_refuses(
    email, currency, payment_method, lines, extra
):
    body = {
        "customer_email": email,
        "currency": currency,
        "payment_method": payment_method,
        "lines": lines,
        **extra,
    }
    _agrees(body)
