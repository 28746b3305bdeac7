# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""order_confirmed_without_capture: a confirmed order whose money the provider does not hold.

No net capture at the provider references the order (never charged, or refunded behind
Concord's back while the order stayed confirmed). A refund payments recorded in full —
a person refunded a confirmed order on purpose, with a reason, and the provider agrees —
is not a disagreement (refund_unrecorded watches refunds payments does not know).
Orders confirmed less than SETTLE_SECONDS ago are skipped: their charge may not be
synced yet. The money at risk is the order's total.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from orders.choices import OrderStatus
from payments.choices import PaymentStatus
from reconciliation.choices import IncidentType, Severity

from .base import DetectionContext, Detector, Finding
from .registry import register
from .sql import (
    Scope,
    fetch,
    literal,
    net_captures_cte,
    order_scope_sql,
    orders_cte,
    payments_cte,
    settled_before,
    with_,
)


@register
class OrderConfirmedWithoutCapture(Detector):
    name = IncidentType.ORDER_CONFIRMED_WITHOUT_CAPTURE
    severity = Severity.HIGH
    description = "A confirmed order with no capture at the provider."
    uses_provider_records = True
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        # The charges are narrowed only by order id: a re-check by reference/charge must
        # still see every capture of the order.
        charges_scope = Scope(order_ids=ctx.scope.order_ids)
        head, params = with_(net_captures_cte(charges_scope), orders_cte(), payments_cte())
        where, scope_params = order_scope_sql(ctx.scope, "o.id")
        sql = head + (
            "SELECT o.id, o.total, o.currency, o.updated_at, p.id AS payment_id, "
            "p.status AS payment_status, p.provider_charge_id "
            "FROM o LEFT JOIN p ON p.order_id = o.id "
            f"WHERE o.status = {literal(OrderStatus.CONFIRMED)} AND o.updated_at < %s{where} "
            "AND (p.status IS NULL OR p.status <> %s) "
            "AND NOT EXISTS (SELECT 1 FROM nc WHERE nc.order_id = o.id) "
            "ORDER BY o.id"
        )
        yield from self.findings_from(
            fetch(sql, [*params, settled_before(ctx.now), *scope_params, PaymentStatus.REFUNDED])
        )

    def findings_from(self, rows: Iterable[dict]) -> Iterator[Finding]:
        """Findings from rows in the shape and order of find's statement."""
        for row in rows:
            yield self.finding(
                fingerprint_parts=[row["id"]],
                order_id=row["id"],
                payment_id=row["payment_id"],
                charge_id=row["provider_charge_id"],
                amount_at_risk=row["total"],
                currency=row["currency"],
                details={
                    "reference": str(row["id"]),
                    "payment_status": row["payment_status"],
                    "recorded_charge_id": row["provider_charge_id"],
                },
            )
