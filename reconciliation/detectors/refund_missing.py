# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""refund_missing: an order was cancelled after its payment was captured, and the
provider still holds the money of the charge payments recorded.

Looks at cancelled orders, and at orders stuck in `cancelling` past the pending SLA
(the cancellation saga's refund never happened). The money at risk is what the provider
has not refunded of that charge.
"""

from __future__ import annotations

from collections.abc import Iterator

from orders.choices import OrderStatus
from reconciliation.amounts import minor_to_major
from reconciliation.choices import IncidentType, Severity

from .base import DetectionContext, Detector, Finding, Scope
from .registry import register
from .sql import (
    fetch,
    literal,
    net_captures_cte,
    order_scope_sql,
    orders_cte,
    payments_cte,
    pending_sla_cutoff,
    settled_before,
    with_,
)


@register
class RefundMissing(Detector):
    name = IncidentType.REFUND_MISSING
    severity = Severity.HIGH
    description = "A cancelled order whose captured charge was not refunded at the provider."
    uses_provider_records = True
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        head, params = with_(
            net_captures_cte(Scope(order_ids=ctx.scope.order_ids)), orders_cte(), payments_cte()
        )
        where, scope_params = order_scope_sql(ctx.scope, "o.id")
        sql = head + (
            "SELECT o.id, o.status, o.failure_reason, p.id AS payment_id, p.status AS payment_status, "
            "nc.provider_id, nc.amount_minor, nc.refunded_minor, nc.currency "
            "FROM o JOIN p ON p.order_id = o.id JOIN nc ON nc.provider_id = p.provider_charge_id "
            f"WHERE (o.status = {literal(OrderStatus.CANCELLED)} "
            f"OR (o.status = {literal(OrderStatus.CANCELLING)} AND o.updated_at < %s)) "
            f"AND o.updated_at < %s{where} ORDER BY o.id"
        )
        cutoffs = [pending_sla_cutoff(ctx.now), settled_before(ctx.now)]
        for row in fetch(sql, [*params, *cutoffs, *scope_params]):
            yield self.finding(
                fingerprint_parts=[row["id"]],
                order_id=row["id"],
                payment_id=row["payment_id"],
                charge_id=row["provider_id"],
                amount_at_risk=minor_to_major(row["amount_minor"] - row["refunded_minor"], row["currency"]),
                currency=row["currency"],
                details={
                    "reference": str(row["id"]),
                    "order_status": row["status"],
                    "order_failure_reason": row["failure_reason"],
                    "payment_status": row["payment_status"],
                    "refunded_minor": row["refunded_minor"],
                },
            )
