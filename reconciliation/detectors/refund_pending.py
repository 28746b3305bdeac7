"""refund_pending: a refund Concord asked for is still pending past its SLA.

Every refund Concord starts is a durable intent (a pending Refund row with its fixed
provider key) that the payments sweeper (payments.refunds_resume) keeps sending and the
provider's refund webhooks settle. If it is still pending after the refund SLA
(reconciliation.conf.refund_pending_sla_seconds: REFUND_PENDING_SLA_SECONDS, the same limit
past which the back office lists the refund under "Needs attention") — the provider has been down that long, or refuses to
answer for sure — a person must look: this incident says so, whatever path asked for
the refund (back office, cancellation saga, remediation; partial refunds of confirmed
orders included). It resolves itself once the refund succeeds or fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from payments.choices import RefundStatus
from payments.selectors import payments_reconciliation_values, refunds_reconciliation_values
from reconciliation.choices import IncidentType, Severity
from reconciliation.conf import refund_pending_sla_seconds

from .base import DetectionContext, Detector, Finding
from .registry import register


@register
class RefundPending(Detector):
    name = IncidentType.REFUND_PENDING
    severity = Severity.HIGH
    description = "A refund Concord asked for is still pending past its SLA: the customer waits for money."

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        cutoff = ctx.now - timedelta(seconds=refund_pending_sla_seconds())
        refunds = list(
            refunds_reconciliation_values()
            .filter(status=RefundStatus.PENDING, created_at__lt=cutoff)
            .order_by("id")
        )
        payment_ids = {r["payment_id"] for r in refunds}
        orders = dict(
            payments_reconciliation_values().filter(id__in=payment_ids).values_list("id", "order_id")
        )
        wanted = ctx.scope.order_ids
        for refund in refunds:
            order_id = orders.get(refund["payment_id"])
            if wanted is not None and order_id not in wanted:
                continue
            yield self.finding(
                fingerprint_parts=[refund["id"]],
                order_id=order_id,
                payment_id=refund["payment_id"],
                amount_at_risk=refund["amount"],
                currency=refund["currency"],
                details={
                    "refund_id": refund["id"],
                    "asked_at": refund["created_at"].isoformat(),
                    "pending_seconds": int((ctx.now - refund["created_at"]).total_seconds()),
                },
            )
