"""duplicate_charge: one reference (order) holds more than one net capture at the provider.

A net capture is a succeeded charge not fully refunded. The refunded part is the larger of
the charge's own `amount_refunded` (as of its last sync) and the sum of its succeeded
refunds synced since: the incremental pull does not revisit old charges, but it does see
every new refund.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.db.models import Count, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest

from reconciliation.amounts import minor_to_major
from reconciliation.choices import IncidentType, Severity
from reconciliation.models import ProviderCharge, ProviderRefund

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register

SUCCEEDED = "succeeded"


def net_captures(scope: Scope):
    """Queryset of charges that still hold money: succeeded and not fully refunded."""
    refunded = (
        ProviderRefund.objects.filter(charge_provider_id=OuterRef("provider_id"), status=SUCCEEDED)
        .values("charge_provider_id")
        .annotate(total=Sum("amount_minor"))
        .values("total")
    )
    charges = ProviderCharge.objects.filter(status=SUCCEEDED)
    if scope.references is not None:
        charges = charges.filter(reference__in=scope.references)
    if scope.order_ids is not None:
        charges = charges.filter(reference__in=[str(i) for i in scope.order_ids])
    if scope.charge_ids is not None:
        charges = charges.filter(provider_id__in=scope.charge_ids)
    return charges.annotate(
        refunded_minor=Greatest(F("amount_refunded_minor"), Coalesce(Subquery(refunded), Value(0)))
    ).filter(refunded_minor__lt=F("amount_minor"))


@register
class DuplicateCharge(Detector):
    name = IncidentType.DUPLICATE_CHARGE
    severity = Severity.HIGH
    description = "More than one net capture at the provider for one order."
    uses_provider_records = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        captures = net_captures(ctx.scope)
        # Set-based: the database groups and counts; only the duplicated references come back.
        duplicated = (
            captures.order_by()
            .values("reference")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .values("reference")
        )
        rows = (
            captures.filter(reference__in=duplicated)
            # Local id breaks ties within one provider second: the sync inserts in the
            # provider's own (created, id) order, so this is the order of the charges.
            .order_by("reference", "created", "id")
            .values_list("reference", "provider_id", "amount_minor", "refunded_minor", "currency", "created")
        )
        by_reference: dict[str, list[tuple]] = defaultdict(list)
        for row in rows.iterator(chunk_size=2000):
            by_reference[row[0]].append(row)
        for reference, charges in by_reference.items():
            yield self._finding(reference, charges)

    def _finding(self, reference: str, charges: list[tuple]) -> Finding:
        # The earliest capture is taken as the order's own; every later one is extra money.
        kept, extras = charges[0], charges[1:]
        currency = kept[4]
        at_risk_minor = sum(c[2] - c[3] for c in extras if c[4] == currency)
        return self.finding(
            fingerprint_parts=[reference],
            order_id=int(reference) if reference.isdigit() else None,
            charge_id=extras[0][1],
            amount_at_risk=minor_to_major(at_risk_minor, currency),
            currency=currency,
            details={
                "reference": reference,
                "kept_charge_id": kept[1],
                "extra_charge_ids": [c[1] for c in extras],
                "captures": [
                    {
                        "charge_id": c[1],
                        "amount_minor": c[2],
                        "refunded_minor": c[3],
                        "currency": c[4],
                        "created": c[5].isoformat(),
                    }
                    for c in charges
                ],
                "other_currencies": sorted({c[4] for c in extras if c[4] != currency}),
            },
        )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        reference = subject.details.get("reference")
        if reference:
            return Scope(references=frozenset({reference}))
        return super().scope_for(subject)
