"""Money is a Decimal plus an ISO 4217 currency; never a float.

Providers speak minor units (cents); Concord stores major units with the
currency's exponent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 minor-unit exponents for the currencies Concord accepts.
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "CHF": 2,
    "SEK": 2,
    "JPY": 0,
}
CURRENCY_CHOICES = [(code, code) for code in sorted(CURRENCY_EXPONENTS)]
MONEY_MAX_DIGITS = 14
MONEY_DECIMAL_PLACES = 2


def is_supported_currency(currency: str) -> bool:
    return currency in CURRENCY_EXPONENTS


def quantize(amount: Decimal, currency: str) -> Decimal:
    exponent = CURRENCY_EXPONENTS[currency]
    return amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN)


def to_minor_units(amount: Decimal, currency: str) -> int:
    exponent = CURRENCY_EXPONENTS[currency]
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} has more precision than {currency} allows")
    return int(minor)


def from_minor_units(minor: int, currency: str) -> Decimal:
    exponent = CURRENCY_EXPONENTS[currency]
    return quantize(Decimal(minor).scaleb(-exponent), currency)


def format_amount(amount: Decimal, currency: str) -> str:
    """The API's decimal-string form, e.g. "25.00"."""
    return str(quantize(amount, currency))
