"""The back office's operations registry: every staff action, declared once.

    operation_get(name)                 -> Operation          (an approval's stored name)
    operation_for(page, op)             -> Operation | None   (a submitted form)
    offers_for(page, case, user)        -> list[Offer]        (what a page shows now)

How to add an action: docs/operations-layer.md.
"""

from __future__ import annotations

from typing import Any

from core.errors import NotFound

from .base import (
    APPROVED_AMOUNT,
    Case,
    IncidentCase,
    Input,
    Offer,
    Operation,
    OrderCase,
    Outcome,
    Params,
    Preview,
    RunsCase,
    approval_reason,
    needs_approval,
)
from .exposure import approval_decisions_serialise
from .incidents import INCIDENT_OPERATIONS, remediation_label
from .orders import ORDER_OPERATIONS, REFUND_KEY_PREFIX, SAGA_OPERATIONS, parse_amount

OPERATIONS: dict[str, Operation] = {op.name: op for op in (*ORDER_OPERATIONS, *INCIDENT_OPERATIONS)}
_BY_FORM = {(op.page, op.op): op for op in OPERATIONS.values()}
assert len(OPERATIONS) == len(ORDER_OPERATIONS) + len(INCIDENT_OPERATIONS), "operation names are unique"
assert len(_BY_FORM) == len(OPERATIONS), "form values are unique per page"


def operation_get(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise NotFound(f"No operation {name!r}.", code="operation_unknown") from None


def operation_for(page: str, op: str) -> Operation | None:
    return _BY_FORM.get((page, op))


def offers_for(page: str, case: Any, user: Any) -> list[Offer]:
    """Every action of `page` offered to `user` now, in declaration order."""
    return [
        offer
        for op in OPERATIONS.values()
        if op.page == page and op.may(user)
        for offer in op.offers(case, user)
    ]


__all__ = [
    "APPROVED_AMOUNT",
    "OPERATIONS",
    "REFUND_KEY_PREFIX",
    "SAGA_OPERATIONS",
    "Case",
    "IncidentCase",
    "Input",
    "Offer",
    "Operation",
    "OrderCase",
    "Outcome",
    "Params",
    "Preview",
    "RunsCase",
    "approval_decisions_serialise",
    "approval_reason",
    "needs_approval",
    "offers_for",
    "operation_for",
    "operation_get",
    "parse_amount",
    "remediation_label",
]
