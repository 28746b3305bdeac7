"""What orders hands to other apps and to the API: frozen dataclasses, never models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class OrderLineDTO:
    sku: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


@dataclass(frozen=True)
class Refusal:
    """Why a change would be refused now: an error code and words for people."""

    code: str
    message: str


@dataclass(frozen=True)
class OrderDTO:
    id: int
    client_id: int
    status: str
    failure_reason: str | None
    customer_email: str
    currency: str
    total: Decimal
    payment_method: str
    lines: tuple[OrderLineDTO, ...]
    created_at: datetime
    updated_at: datetime
