"""What inventory hands to other apps: small frozen dataclasses, never models."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ProductDTO:
    sku: str
    name: str
    price: Decimal
    currency: str
    active: bool
    # on_hand - reserved at the time of reading.
    available: int


@dataclass(frozen=True)
class StockLevelDTO:
    sku: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class ReservationDTO:
    id: int
    order_id: int
    sku: str
    quantity: int
    state: str


@dataclass(frozen=True)
class ConservationProblem:
    """One broken stock invariant (DESIGN §6.4) for one sku."""

    sku: str
    # "on_hand_vs_movements" | "reserved_vs_held" | "counter_out_of_range"
    kind: str
    expected: int
    actual: int
