"""The detectors a run executes. One detector = one small module listed in MODULES."""

from __future__ import annotations

from importlib import import_module

from reconciliation.conf import setting

from .base import Detector

# Import order is run order. Phase 2 adds charge_without_order, amount_mismatch,
# order_confirmed_without_capture, refund_missing, refund_unrecorded, stock_drift,
# ledger_imbalance, clearing_mismatch and stuck_saga here, one module each.
MODULES = ("reconciliation.detectors.duplicate_charge",)

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
