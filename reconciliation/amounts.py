"""Provider amounts (minor units) to Concord's Decimal money."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from core.money import CURRENCY_EXPONENTS, from_minor_units


def minor_to_major(minor: int, currency: str) -> Decimal:
    """Decimal amount for `minor` units. A currency Concord does not accept is still stored
    (with two decimals): the provider holding one is itself a finding, not a reason to drop it."""
    if currency in CURRENCY_EXPONENTS:
        return from_minor_units(minor, currency)
    return Decimal(minor).scaleb(-2)


def provider_time(created: int) -> datetime:
    return datetime.fromtimestamp(created, tz=UTC)


def order_id_from_reference(reference: str | None) -> int | None:
    """The Concord order id a provider reference names, or None when it names none
    (non-digits, zero, or too large for a bigint)."""
    if reference and reference.isascii() and reference.isdigit() and len(reference) <= 18:
        return int(reference) or None
    return None
