"""Orders' API serializers: input and output are separate classes.

Input accepts only what a client may decide (who buys, in which currency, with
which payment token, which skus and how many). Anything else in the body,
including `price`, `unit_price`, `total` or `status`, is rejected with a 400 that
names the field: prices, totals and states come from the server, and a client
that sends them has a bug we would rather show than silently ignore.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, validate_email
from rest_framework import serializers

from core.api_serializers import StrictSerializer as BaseStrictSerializer
from core.money import CURRENCY_EXPONENTS, format_amount
from payments.choices import PaymentStatus, RefundStatus

from .choices import FailureReason, OrderStatus
from .dto import OrderDTO
from .events import order_document
from .models import MAX_LINES_PER_ORDER, MAX_QUANTITY_PER_LINE

UNKNOWN_FIELD_MESSAGE = "Unknown field. Prices, totals and states are set by the server."
PAYMENT_METHOD_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
SKU_MAX_LENGTH = 64


class StrictSerializer(BaseStrictSerializer):
    """Rejects keys it does not declare (see the module docstring)."""

    unknown_field_message = UNKNOWN_FIELD_MESSAGE


class OrderLineInput(StrictSerializer):
    sku = serializers.CharField(max_length=SKU_MAX_LENGTH, trim_whitespace=False)
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY_PER_LINE)


class OrderInput(StrictSerializer):
    customer_email = serializers.EmailField(max_length=254)
    currency = serializers.ChoiceField(
        choices=sorted(CURRENCY_EXPONENTS),
        help_text="ISO 4217 code; every product on the order must be sold in it.",
    )
    payment_method = serializers.CharField(
        max_length=64,
        validators=[RegexValidator(PAYMENT_METHOD_PATTERN, "A provider token: letters, digits and _.")],
        help_text="The provider's payment token (sandbox: pm_card_ok, pm_card_declined, pm_card_insufficient_funds).",
    )
    lines = OrderLineInput(many=True, allow_empty=False, max_length=MAX_LINES_PER_ORDER)

    def validate_lines(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: dict[str, int] = {}
        errors: dict[int, dict[str, list[str]]] = {}
        for index, line in enumerate(lines):
            first = seen.setdefault(line["sku"], index)
            if first != index:
                errors[index] = {"sku": [f"Already on line {first}: one line per sku."]}
        if errors:
            raise serializers.ValidationError(errors)
        return lines


_ORDER_KEYS = frozenset(OrderInput._declared_fields)
_LINE_KEYS = frozenset(OrderLineInput._declared_fields)
_PAYMENT_METHOD = re.compile(r"[A-Za-z0-9_]{1,64}")


def order_input_valid(data: Any) -> dict[str, Any] | None:
    """OrderInput's validated data for a body that is plainly valid, else None: then
    OrderInput itself must run (and word the 400).

    Why: DRF builds and deep-copies the nested serializers' fields for every
    request; on POST orders/ that was about 5 % of the request's CPU (issue 16,
    bench/api_cpu.py). This accepts a strict subset of what OrderInput accepts —
    exactly the declared keys; strings as given, without surrounding whitespace,
    printable, within the fields' lengths; integer quantities; a valid e-mail
    address; distinct skus — and returns what OrderInput would return for it, so
    a valid order takes this path and every doubtful or invalid one the
    serializer's (same errors, same envelope; tests/api_orders/test_bad_input.py).
    """
    if type(data) is not dict or data.keys() != _ORDER_KEYS:
        return None
    email, currency, payment_method, lines = (
        data["customer_email"],
        data["currency"],
        data["payment_method"],
        data["lines"],
    )
    if (
        type(email) is not str
        or not 0 < len(email) <= 254
        or not email.isprintable()
        or email.strip() != email
        or type(currency) is not str
        or currency not in CURRENCY_EXPONENTS
        or type(payment_method) is not str
        or not _PAYMENT_METHOD.fullmatch(payment_method)
        or type(lines) is not list
        or not 0 < len(lines) <= MAX_LINES_PER_ORDER
    ):
        return None
    clean_lines: list[dict[str, Any]] = []
    skus: set[str] = set()
    for line in lines:
        if type(line) is not dict or line.keys() != _LINE_KEYS:
            return None
        sku, quantity = line["sku"], line["quantity"]
        if (
            type(sku) is not str
            or not 0 < len(sku) <= SKU_MAX_LENGTH
            or not sku.isprintable()
            or sku in skus
            or type(quantity) is not int
            or not 1 <= quantity <= MAX_QUANTITY_PER_LINE
        ):
            return None
        skus.add(sku)
        clean_lines.append({"sku": sku, "quantity": quantity})
    try:
        validate_email(email)
    except DjangoValidationError:
        return None
    return {
        "customer_email": email,
        "currency": currency,
        "payment_method": payment_method,
        "lines": clean_lines,
    }


class OrderLineOutput(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.CharField(help_text='Catalog price when the order was placed, e.g. "12.50".')
    line_total = serializers.CharField(help_text="unit_price x quantity.")


class OrderRefundOutput(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.CharField(help_text="Decimal string in the order's currency.")
    status = serializers.ChoiceField(choices=RefundStatus.choices)
    created_at = serializers.DateTimeField()


class OrderPaymentOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=PaymentStatus.choices,
        help_text="unknown: the provider did not answer; it is being settled (never guessed).",
    )
    amount = serializers.CharField(help_text="What is charged (the order total).")
    refunded_amount = serializers.CharField(help_text="Refunded so far (succeeded refunds).")
    refunds = OrderRefundOutput(many=True)


class OrderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    failure_reason = serializers.ChoiceField(
        choices=FailureReason.choices,
        allow_null=True,
        help_text="Why the order is (being) cancelled; else null.",
    )
    customer_email = serializers.EmailField()
    currency = serializers.CharField()
    total = serializers.CharField(help_text='Decimal string, e.g. "25.00".')
    lines = OrderLineOutput(many=True)
    payment = OrderPaymentOutput(allow_null=True, help_text="The payment and its refunds.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: OrderDTO) -> dict[str, Any]:
        # The fields above document the shape; the DTO is rendered directly so
        # money keeps its currency's exponent ("2500" JPY, "25.00" EUR).
        return order_json(instance)


class OrderPageOutput(serializers.Serializer):
    results = OrderOutput(many=True)
    next = serializers.URLField(allow_null=True, help_text="URL of the next page; null on the last page.")


class OrderListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.values, required=False)
    created_gte = serializers.DateTimeField(required=False)
    created_lt = serializers.DateTimeField(required=False)
    cursor = serializers.CharField(required=False, max_length=512)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=50, default=20)


def order_json(order: OrderDTO) -> dict[str, Any]:
    """The order JSON of DESIGN §5; money as decimal strings in the order's currency,
    with its payment state and refunds (orders_with_payments fills them)."""
    payment = order.payment
    return {
        **order_document(order),
        "payment": None
        if payment is None
        else {
            "status": payment.status,
            "amount": format_amount(payment.amount, order.currency),
            "refunded_amount": format_amount(payment.refunded_amount, order.currency),
            "refunds": [
                {
                    "id": r.id,
                    "amount": format_amount(r.amount, order.currency),
                    "status": r.status,
                    "created_at": _DATETIME.to_representation(r.created_at),
                }
                for r in payment.refunds
            ],
        },
    }


_DATETIME = serializers.DateTimeField()
