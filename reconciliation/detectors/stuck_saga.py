"""stuck_saga: a saga run a person must look at (failed, compensation failed, or still
active past its SLA), from the saga engine's own stuck selector (DESIGN §6.6).

When the run's subject is an order, the order's total is the money at risk (one query
for all of them).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from orders.selectors import orders_reconciliation_values
from reconciliation.choices import IncidentType, Severity
from reconciliation.conf import setting
from sagas.selectors import saga_runs_stuck

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register


@register
class StuckSaga(Detector):
    name = IncidentType.STUCK_SAGA
    severity = Severity.HIGH
    description = "A saga run that failed or overran its SLA."

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        runs = saga_runs_stuck(now=ctx.now, limit=int(setting("STUCK_SAGA_LIMIT")))
        order_ids = {int(r.subject_id) for r in runs if r.subject_id.isdigit()}
        orders = {
            row["id"]: row
            for row in orders_reconciliation_values()
            .filter(id__in=order_ids)
            .values("id", "total", "currency")
        }
        for run in runs:
            order = orders.get(int(run.subject_id)) if run.subject_id.isdigit() else None
            yield self.finding(
                fingerprint_parts=[run.id],
                saga_run_id=run.id,
                order_id=order["id"] if order else None,
                amount_at_risk=order["total"] if order else Decimal("0"),
                currency=order["currency"] if order else "",
                details={
                    "saga_type": run.saga_type,
                    "subject_id": run.subject_id,
                    "status": run.status,
                    "step": run.step,
                    "direction": run.direction,
                    "attempts": run.attempts,
                    "last_error": run.last_error[:500],
                    "sla_at": run.sla_at.isoformat(),
                },
            )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        return Scope()
