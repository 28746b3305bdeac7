# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""clearing_mismatch: the provider_clearing account differs from what the provider holds.

Invariant 9 (DESIGN §6): the ledger's provider_clearing balance (captures minus refunds
Concord booked) equals the provider's net (succeeded charges minus succeeded refunds in
the synced records). Both sides are cut at now - SETTLE_SECONDS so work in flight does
not count. One incident per currency; the money at risk is the difference. When
settlements were imported, their cumulative net is shown beside it for the person.

The provider's charges are read from their running balance (ProviderNetByHour: whole
hours before the cutoff's hour, kept by triggers in the same statement as the charges)
plus the charges of the cutoff's own hour (the `created` index): no pass sums every
charge. A charge written straight into the table moves the balance too (the trigger), so
it is found; a balance that no longer matches its charges (triggers bypassed, a row of
the balance edited) is what `provider_net_drift` / `reconcile --verify-balances` finds.
Refunds are few and read as rows. The ledger's side is payments' own running balance,
read the same way (`ledger_balances_by_currency`). RECONCILIATION["KEPT_BALANCES"] =
False sums every charge and entry instead (the reference the tests compare with).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from django.db.models import Sum

from payments.selectors import ledger_balances_by_currency
from reconciliation.choices import IncidentType, Severity
from reconciliation.conf import setting
from reconciliation.models import ProviderSettlement

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register
from .sql import CHARGES, PROVIDER_NETS, REFUNDS, SUCCEEDED, fetch, provider_hour, settled_before

PROVIDER_CLEARING = "provider_clearing"


@register
class ClearingMismatch(Detector):
    name = IncidentType.CLEARING_MISMATCH
    severity = Severity.HIGH
    description = "Ledger provider_clearing differs from the provider's net."
    uses_provider_records = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        cutoff = settled_before(ctx.now)
        if setting("KEPT_BALANCES"):
            # whole hours before the cutoff's from the balance, the cutoff's own hour as rows
            hour = provider_hour(cutoff)
            charges = (
                f"SELECT currency, net AS amount FROM {PROVIDER_NETS} WHERE hour < %s UNION ALL "
                f"SELECT currency, amount FROM {CHARGES} WHERE status = '{SUCCEEDED}' AND created >= %s AND created < %s"
            )
            params = [hour, hour, cutoff]
        else:
            charges = f"SELECT currency, amount FROM {CHARGES} WHERE status = '{SUCCEEDED}' AND created < %s"
            params = [cutoff]
        sql = (
            f"SELECT currency, SUM(amount) AS net FROM ({charges}"
            "  UNION ALL"
            f"  SELECT r.currency, -r.amount FROM {REFUNDS} r JOIN {CHARGES} c"
            "    ON c.provider_id = r.charge_provider_id"
            f"  WHERE r.status = '{SUCCEEDED}' AND r.created < %s AND c.created < %s"
            ") t GROUP BY currency"
        )
        provider = {row["currency"]: Decimal(row["net"]) for row in fetch(sql, [*params, cutoff, cutoff])}
        ledger = ledger_balances_by_currency(
            code=PROVIDER_CLEARING, created_before=cutoff, kept=bool(setting("KEPT_BALANCES"))
        )
        settled = dict(
            ProviderSettlement.objects.order_by()
            .values("currency")
            .annotate(net=Sum("net"))
            .values_list("currency", "net")
        )
        for currency in sorted(set(provider) | set(ledger)):
            provider_net = provider.get(currency, Decimal("0"))
            booked = ledger.get(currency, Decimal("0"))
            if provider_net == booked:
                continue
            yield self.finding(
                fingerprint_parts=[currency],
                amount_at_risk=abs(provider_net - booked),
                currency=currency,
                details={
                    "ledger_provider_clearing": str(booked),
                    "provider_net": str(provider_net),
                    "difference": str(provider_net - booked),
                    "settlements_net": str(settled[currency]) if currency in settled else None,
                    "cutoff": cutoff.isoformat(),
                },
            )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        return Scope()
