"""Request parsing. Every malformed input ends as an ApiError (4xx), never a 500."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from .errors import ApiError

# The sandbox's own currency list (ISO 4217); Concord's list is a subset.
CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF", "SEK", "DKK", "NOK", "PLN", "CZK", "JPY", "CAD", "AUD"})
# Minor units; anything larger is a bug in the caller, not a purchase.
MAX_AMOUNT = 9_999_999_999
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 10
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]{1,255}$")
_CHARGE_ID = re.compile(r"^ch_[0-9a-f]{24}$")


def parse_json_object(request: HttpRequest) -> dict:
    try:
        raw = request.body
    except RequestDataTooBig as exc:
        _discard_body(request)
        raise ApiError(413, "request_too_large", "The request body is too large.") from exc
    if not raw:
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested input
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    return data


def _discard_body(request: HttpRequest, limit: int = 16 * 1024 * 1024) -> None:
    """Read and drop an oversized body, so the client's keep-alive connection stays
    usable for its next request instead of being cut mid-upload."""
    read = 0
    while read < limit:
        chunk = request.read(64 * 1024)
        if not chunk:
            return
        read += len(chunk)


def idempotency_key(request: HttpRequest) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise ApiError(400, "idempotency_key_required", "Send an Idempotency-Key header.")
    if not _PRINTABLE_ASCII.match(key):
        raise ApiError(
            400, "idempotency_key_invalid", "The Idempotency-Key must be 1-255 printable ASCII characters."
        )
    return key


def _reject_unknown(data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, "parameter_unknown", f"Unknown parameter: {unknown[0]}.", {"param": unknown[0]})


def _required(data: dict, name: str) -> object:
    if name not in data or data[name] is None:
        raise ApiError(400, "parameter_missing", f"Missing required parameter: {name}.", {"param": name})
    return data[name]


def _amount(value: object, name: str = "amount") -> int:
    # bool is an int in Python; JSON true is not an amount.
    if type(value) is not int:
        raise ApiError(
            400, "invalid_amount", f"{name} must be an integer number of minor units.", {"param": name}
        )
    if value <= 0:
        raise ApiError(400, "invalid_amount", f"{name} must be positive.", {"param": name})
    if value > MAX_AMOUNT:
        raise ApiError(400, "amount_too_large", f"{name} must be at most {MAX_AMOUNT}.", {"param": name})
    return value


def _text(value: object, name: str, code: str) -> str:
    if not isinstance(value, str) or not _PRINTABLE_ASCII.match(value):
        raise ApiError(400, code, f"{name} must be 1-255 printable ASCII characters.", {"param": name})
    return value


@dataclass(frozen=True)
class ChargeInput:
    amount: int
    currency: str
    payment_method: str
    reference: str


def charge_input(data: dict, payment_methods: set[str]) -> ChargeInput:
    _reject_unknown(data, {"amount", "currency", "payment_method", "reference"})
    amount = _amount(_required(data, "amount"))
    currency = _required(data, "currency")
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise ApiError(
            400, "invalid_currency", f"Unsupported currency: {str(currency)[:16]!r}.", {"param": "currency"}
        )
    payment_method = _text(_required(data, "payment_method"), "payment_method", "invalid_payment_method")
    if payment_method not in payment_methods:
        raise ApiError(
            400,
            "invalid_payment_method",
            f"Unknown payment method; try one of {sorted(payment_methods)}.",
            {"param": "payment_method"},
        )
    reference = _text(_required(data, "reference"), "reference", "invalid_reference")
    return ChargeInput(amount, currency.upper(), payment_method, reference)


@dataclass(frozen=True)
class RefundInput:
    charge: str
    amount: int | None  # None: the whole refundable remainder


def refund_input(data: dict) -> RefundInput:
    _reject_unknown(data, {"charge", "amount"})
    charge = _required(data, "charge")
    if not isinstance(charge, str) or not _CHARGE_ID.match(charge):
        raise ApiError(404, "resource_missing", "No such charge.", {"param": "charge"})
    amount = data.get("amount")
    return RefundInput(charge, None if amount is None else _amount(amount))


def query_int(
    request: HttpRequest, name: str, *, minimum: int, maximum: int, default: int | None
) -> int | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "parameter_invalid", f"{name} must be an integer.", {"param": name}) from exc
    if not minimum <= value <= maximum:
        raise ApiError(
            400, "parameter_invalid", f"{name} must be between {minimum} and {maximum}.", {"param": name}
        )
    return value


def query_text(request: HttpRequest, name: str) -> str | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    return _text(raw, name, "parameter_invalid")


def query_date(request: HttpRequest, name: str) -> datetime.date:
    raw = request.GET.get(name)
    if not raw:
        raise ApiError(400, "parameter_missing", f"Missing required parameter: {name}.", {"param": name})
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(400, "parameter_invalid", f"{name} must be YYYY-MM-DD.", {"param": name}) from exc


def json_number(value: object, name: str, *, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        raise ApiError(400, "parameter_invalid", f"{name} must be a number.", {"param": name})
    if not minimum <= value <= maximum:
        raise ApiError(
            400, "parameter_invalid", f"{name} must be between {minimum} and {maximum}.", {"param": name}
        )
    return value
