# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""refund_unrecorded: the provider refunded a charge payments knows, and payments has no
record of that refund (someone refunded in the provider's dashboard, or a refund's answer
was lost). The books and the ledger miss that money leaving.

Refunds of charges payments does not know (orphan or extra charges, e.g. refunded by a
remediation) are not payments' to record and are ignored here.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciliation.choices import IncidentType, Severity

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register
from .sql import REFUNDS, SUCCEEDED, fetch, in_sql, payments_cte, refunds_cte, settled_before, with_


@register
class RefundUnrecorded(Detector):
    name = IncidentType.REFUND_UNRECORDED
    severity = Severity.MEDIUM
    description = "A refund at the provider that Concord's payments do not record."
    uses_provider_records = True
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        head, params = with_(payments_cte(), refunds_cte())
        where, scope_params = "", []
        if ctx.scope.order_ids is not None:
            part, values = in_sql("p.order_id", sorted(ctx.scope.order_ids))
            where, scope_params = where + part, scope_params + values
        if ctx.scope.charge_ids is not None:
            part, values = in_sql("r.charge_provider_id", sorted(ctx.scope.charge_ids))
            where, scope_params = where + part, scope_params + values
        sql = head + (
            "SELECT r.provider_id, r.charge_provider_id, r.amount, r.currency, r.created, "
            "p.id AS payment_id, p.order_id "
            f"FROM {REFUNDS} r JOIN p ON p.provider_charge_id = r.charge_provider_id "
            f"WHERE r.status = '{SUCCEEDED}' AND r.created < %s{where} "
            "AND NOT EXISTS (SELECT 1 FROM rf WHERE rf.provider_refund_id = r.provider_id) "
            "ORDER BY r.created, r.id"
        )
        for row in fetch(sql, [*params, settled_before(ctx.now), *scope_params]):
            yield self.finding(
                fingerprint_parts=[row["provider_id"]],
                order_id=row["order_id"],
                payment_id=row["payment_id"],
                charge_id=row["charge_provider_id"],
                amount_at_risk=row["amount"],
                currency=row["currency"],
                details={
                    "reference": str(row["order_id"]),
                    "provider_refund_id": row["provider_id"],
                    "created": row["created"].isoformat(),
                },
            )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        if subject.charge_id:
            return Scope(charge_ids=frozenset({subject.charge_id}))
        return super().scope_for(subject)
