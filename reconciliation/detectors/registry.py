"""The detectors a run executes. One detector = one small module listed in MODULES."""

from __future__ import annotations

from importlib import import_module

from reconciliation.conf import setting

from .base import Detector

# Import order is run order: the money-at-the-provider checks first.
MODULES = (
    "reconciliation.detectors.charge_without_order",
    "reconciliation.detectors.duplicate_charge",
    "reconciliation.detectors.amount_mismatch",
    "reconciliation.detectors.order_confirmed_without_capture",
    "reconciliation.detectors.refund_missing",
    "reconciliation.detectors.refund_unrecorded",
    "reconciliation.detectors.refund_pending",
    "reconciliation.detectors.clearing_mismatch",
    "reconciliation.detectors.ledger_imbalance",
    "reconciliation.detectors.stock_drift",
    "reconciliation.detectors.stuck_saga",
)

_REGISTRY: dict[str, Detector] = {}


def register(cls: type[Detector]) -> type[Detector]:
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise RuntimeError(f"two detectors named {cls.name!r}")
    _REGISTRY[cls.name] = cls()
    return cls


def _load() -> None:
    for module in MODULES:
        import_module(module)


def detectors_all(*, include_disabled: bool = False) -> list[Detector]:
    _load()
    disabled = set() if include_disabled else set(setting("DISABLED_DETECTORS"))
    return [d for name, d in _REGISTRY.items() if name not in disabled]


def detector_get(name: str) -> Detector | None:
    _load()
    return _REGISTRY.get(name)
